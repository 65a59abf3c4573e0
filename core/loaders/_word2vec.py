"""Word2Vec text (``N D`` header), GloVe text (no header), ``.vec``, and Google's binary format.

Text files: words are split off line by line and the numbers parsed by pandas' C reader in large batches
(several times faster than a Python loop, and single-threaded); when a batch does not parse we re-scan it
line by line to name the exact line and what was wrong.

Policies, stated once:
- Tokens are UTF-8; invalid bytes become U+FFFD and a note counts them.
- A word that repeats is kept once (its first vector, as gensim does), with a warning naming it.
- ``nan``/``inf`` values are read as such; the health audit reports the rows.

Written by :func:`write_text` and :func:`write_binary` (``core.export``'s ``word2vec`` and ``word2vec-bin``),
numbers as the shortest decimal that reads back to the same float32 (:func:`text_rows`, shared with the
Projector TSV).
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from core.errors import FormatError
from core.loaders._common import source_key
from core.matrix import EmbeddingMatrix, Provenance

#: The widest vector a text or binary file may declare; wider is a broken or hostile file, not an embedding.
MAX_DIM = 65_536
#: Bytes of text parsed per numpy call: large enough to be fast, small enough to bound the temporary copy.
_BATCH_BYTES = 1 << 24


def _header(first: bytes) -> tuple[int, int] | None:
    parts = first.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def sniff(path: Path) -> str | None:
    """"word2vec-text", "word2vec-binary", "glove", or None when the file is not one of them."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if not head.strip():
        return None
    nl = head.find(b"\n")
    first = head[: nl if nl >= 0 else len(head)]
    hdr = _header(first)
    if hdr is None:
        try:
            fields = first.decode("utf-8", "replace").split()
            [float(x) for x in fields[1:]]
        except ValueError:
            return None
        return "glove" if len(fields) >= 2 else None
    rest = head[nl + 1:]
    line_end = rest.find(b"\n")
    second = rest[: line_end if line_end >= 0 else len(rest)]
    # A text file's second line is a word and numbers (as many as the header says, unless the header is wrong,
    # which the text loader then reports); a binary file's bytes almost never are.
    parts = second.rstrip(b"\r").split()
    try:
        if len(parts) >= 2:
            [float(x) for x in parts[1:]]
            return "word2vec-text"
    except ValueError:
        pass
    return "word2vec-binary"


def check_declared(path: Path, n: int, d: int) -> None:
    """Refuse a header whose shape is empty or too wide, before anything is allocated for it."""
    if n == 0 or d == 0:
        raise FormatError(f"{path}: line 1: header says {n:,} rows of {d:,} values; an embedding matrix needs at "
                          "least one row and one value per row")
    if d > MAX_DIM:
        raise FormatError(f"{path}: line 1: header says {n:,} rows of {d:,} values, more than the {MAX_DIM:,} "
                          "values per row Embedscope reads; the header is wrong or this is not a vectors file")


def _decode_tokens(raw: list[bytes], path: Path) -> tuple[list[str], int]:
    bad = 0
    out = []
    for b in raw:
        try:
            out.append(b.decode("utf-8"))
        except UnicodeDecodeError:
            bad += 1
            out.append(b.decode("utf-8", "replace"))
    return out, bad


def _dedupe(tokens: list[str], vectors: np.ndarray, path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    seen: dict[str, int] = {}
    keep: list[int] = []
    dups: list[str] = []
    for i, t in enumerate(tokens):
        if t in seen:
            dups.append(t)
        else:
            seen[t] = i
            keep.append(i)
    if not dups:
        return tokens, vectors, []
    warnings.warn(f"{path}: {len(dups)} repeated words kept once (first vector): "
                  f"{', '.join(repr(t) for t in dups[:5])}", stacklevel=3)
    idx = np.asarray(keep)
    return [tokens[i] for i in keep], vectors[idx], [
        f"{len(dups)} repeated words were kept once (their first vector): "
        + ", ".join(repr(t) for t in dups[:5])]


def _scan_for_error(data: bytes, path: Path, d: int, first_line_no: int) -> FormatError:
    """Find the first bad line of a text matrix, slowly, to name it."""
    for i, line in enumerate(data.split(b"\n")):
        if not line.strip():
            continue
        no = first_line_no + i
        fields = line.rstrip(b"\r").rstrip(b" ").split(b" ")
        if len(fields) != d + 1:
            return FormatError(f"{path}: line {no}: expected a word and {d} values, found {len(fields)} "
                               "fields separated by single spaces")
        for v in fields[1:]:
            try:
                float(v)
            except ValueError:
                return FormatError(f"{path}: line {no}: {v[:40]!r} is not a number")
    return FormatError(f"{path}: could not be parsed as a word2vec/GloVe text file")


def _parse_slow(lines: list[bytes], path: Path, d: int, data: bytes, first_line_no: int
                ) -> tuple[list[bytes], np.ndarray]:
    """Line-by-line parse for what numpy's reader rejects but Python reads (``1_000``, odd spellings)."""
    raw: list[bytes] = []
    rows: list[list[float]] = []
    try:
        for line in lines:
            fields = line.rstrip(b"\r").rstrip(b" ").split(b" ")
            if len(fields) != d + 1:
                raise ValueError(line)
            raw.append(fields[0])
            rows.append([float(v) for v in fields[1:]])
    except ValueError:
        raise _scan_for_error(data, path, d, first_line_no) from None
    return raw, np.asarray(rows, dtype=np.float32).reshape(len(rows), d)


def _parse_text(data: bytes, path: Path, d: int, first_line_no: int) -> tuple[list[bytes], np.ndarray]:
    """Words split off line by line; the numbers of a batch of lines parsed in one call of pandas' C reader."""
    lines = [ln for ln in data.split(b"\n") if ln and not ln.isspace()]
    out = np.empty((len(lines), d), dtype=np.float32)
    raw: list[bytes] = []
    step = max(1, _BATCH_BYTES // max(1, len(lines[0]) if lines else 1))
    for s in range(0, len(lines), step):
        batch = lines[s:s + step]
        parts = [ln.partition(b" ") for ln in batch]
        rests = [p[2] for p in parts]
        # A line of exactly d values has d-1 spaces after its word; anything else is checked slowly.
        for i in [i for i, r in enumerate(rests) if r.count(b" ") != d - 1]:
            rests[i] = rests[i].rstrip(b"\r").rstrip(b" ")  # word2vec's C tool ends lines with a space
            if rests[i].count(b" ") != d - 1:
                raise _scan_for_error(data, path, d, first_line_no)
        block = parse_block(rests, " ", d)
        if block is None:
            words, block = _parse_slow(batch, path, d, data, first_line_no)
            raw.extend(words)
        else:
            raw.extend(p[0] for p in parts)
        out[s:s + len(batch)] = block
    return raw, out


def parse_block(lines: list[bytes], sep: str, d: int) -> np.ndarray | None:
    """Lines of ``d`` numbers separated by ``sep`` as an (n, d) float32 array; None when any does not parse.

    pandas' C reader: single-threaded (Arrow's threaded CSV reader aborted the process at exit once torch was
    loaded: "terminate called without an active exception") and twice as fast as numpy's text parsing.
    """
    import pandas as pd

    if not lines:
        return np.empty((0, d), dtype=np.float32)
    try:
        frame = pd.read_csv(io.BytesIO(b"\n".join(lines)), sep=sep, header=None, dtype=np.float32, engine="c",
                            na_filter=False, quoting=csv.QUOTE_NONE, skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError):
        return None
    if frame.shape != (len(lines), d):
        return None
    return np.ascontiguousarray(frame.to_numpy(dtype=np.float32))


def _limit_bytes(data: bytes, start: int, limit: int | None) -> bytes:
    if limit is None:
        return data[start:]
    pos = start
    for _ in range(limit):
        nxt = data.find(b"\n", pos)
        if nxt < 0:
            return data[start:]
        pos = nxt + 1
    return data[start:pos]


def load_text(path: Path, limit: int | None = None, fmt: str | None = None) -> EmbeddingMatrix:
    """Word2vec text with header, or GloVe/``.vec`` without; ``limit`` keeps the first rows."""
    data = path.read_bytes()
    if not data.strip():
        raise FormatError(f"{path}: the file is empty")
    nl = data.find(b"\n")
    first = data[: nl if nl >= 0 else len(data)]
    hdr = _header(first)
    if hdr is not None:
        n_header, d = hdr
        start, first_no, kind = (nl + 1 if nl >= 0 else len(data)), 2, "word2vec-text"
        check_declared(path, n_header, d)
    else:
        n_header = None
        # Counted before splitting: a hostile first line can hold millions of fields.
        d = first.rstrip(b"\r").rstrip(b" ").count(b" ")
        if d > MAX_DIM:
            raise FormatError(f"{path}: line 1: a word and {d:,} values, more than the {MAX_DIM:,} values per row "
                              "Embedscope reads; this is not a GloVe vectors file")
        if d < 1:
            raise FormatError(f"{path}: line 1: expected a word followed by numbers (GloVe) or a 'N D' header")
        start, first_no, kind = 0, 1, "glove"
    body = _limit_bytes(data, start, limit)
    raw, vectors = _parse_text(body, path, d, first_no)
    if n_header is not None and limit is None and len(raw) != n_header:
        raise FormatError(f"{path}: line 1: header says {n_header} rows of {d} values but the file has "
                          f"{len(raw)}; fix the header or pass limit=")
    if not raw:
        raise FormatError(f"{path}: no vectors after the header")
    tokens, bad = _decode_tokens(raw, path)
    tokens, vectors, notes = _dedupe(tokens, vectors, path)
    if bad:
        notes.append(f"{bad} words were not valid UTF-8; their bad bytes became U+FFFD")
    if limit is not None:
        notes.append(f"only the first {limit} rows were read (limit={limit})")
    prov = Provenance(format=fmt or kind, path=str(path), dtype="float32 (text)", file_bytes=len(data),
                      vocab_source="the file's words", notes=tuple(notes),
                      key=source_key([path], kind, limit))
    return EmbeddingMatrix(vectors, tokens, provenance=prov)


def load_binary(path: Path, limit: int | None = None) -> EmbeddingMatrix:
    """Google's binary word2vec format: ``N D\\n`` then, per word, ``word `` and D little-endian float32."""
    data = path.read_bytes()
    nl = data.find(b"\n")
    hdr = _header(data[: nl if nl >= 0 else len(data)])
    if hdr is None:
        raise FormatError(f"{path}: line 1: expected a 'N D' header for the binary word2vec format")
    n, d = hdr
    check_declared(path, n, d)
    if limit is not None:
        n = min(n, limit)
    width = 4 * d
    # Allocate only what the file can hold (every row takes a space and d float32 values): a header that
    # declares more is reported as truncated at the first missing vector, not as a failed allocation.
    out = np.empty((min(n, (len(data) - nl - 1) // (width + 1)), d), dtype=np.float32)
    raw: list[bytes] = []
    pos = nl + 1
    size = len(data)
    for i in range(n):
        while pos < size and data[pos] in (10, 13):  # the optional newline after a vector
            pos += 1
        sp = data.find(b" ", pos, pos + 100_000)
        if sp < 0 or sp + 1 + width > size or i >= len(out):
            raise FormatError(f"{path}: vector {i + 1} of {hdr[0]} (byte {pos}) is truncated; the header "
                              "promises more vectors than the file holds")
        raw.append(data[pos:sp])
        out[i] = np.frombuffer(data, dtype="<f4", count=d, offset=sp + 1)
        pos = sp + 1 + width
    tokens, bad = _decode_tokens(raw, path)
    tokens, vectors, notes = _dedupe(tokens, out, path)
    if bad:
        notes.append(f"{bad} words were not valid UTF-8; their bad bytes became U+FFFD")
    if limit is not None:
        notes.append(f"only the first {n} rows were read (limit={limit})")
    prov = Provenance(format="word2vec-binary", path=str(path), dtype="float32", file_bytes=size,
                      vocab_source="the file's words", notes=tuple(notes),
                      key=source_key([path], "w2v-bin", limit))
    return EmbeddingMatrix(vectors, tokens, provenance=prov)


# -- writing ---------------------------------------------------------------------------------------

def round_trip_digits(values: np.ndarray) -> np.ndarray:
    """Per float32 value, the fewest significant digits (6 to 9) whose decimal reads back to the same float32.

    Six digits always suffice when fewer would (a float32 is only ~7.2 digits wide) and nine always suffice.
    A candidate is checked in float64, where rounding error is a billion times below a float32 step; on a
    rounding tie (exact binary fractions such as 0.0361328125) both neighbours must read back.
    """
    x = values.astype(np.float64).reshape(-1)
    finite = np.isfinite(x) & (x != 0)
    need = np.full(x.shape, 6, dtype=np.uint8)  # zero, nan and inf print the same at any precision
    idx = np.flatnonzero(finite)
    need[idx] = 9
    a = np.abs(x[idx])
    e = np.floor(np.log10(a))
    e += a >= 10.0 ** (e + 1)  # log10 can be off by one next to a power of ten
    e -= a < 10.0 ** e
    target = a.astype(np.float32)
    for p in (8, 7, 6):  # a (p-1)-digit decimal is a p-digit one: only what reads back at p can at p-1
        scale = 10.0 ** (p - 1 - e)
        scaled = a * scale
        low = np.floor(scaled)
        with np.errstate(over="ignore"):  # a neighbour past float32's largest value is inf: not a match
            down = (low / scale).astype(np.float32) == target
            up = ((low + 1) / scale).astype(np.float32) == target
        frac = scaled - low
        # Off a tie printf's rounding is ours; on one, either neighbour it may choose must read back.
        ok = np.where(np.abs(frac - 0.5) < 1e-6, down & up, np.where(frac < 0.5, down, up))
        idx, a, e, target = idx[ok], a[ok], e[ok], target[ok]
        need[idx] = p
    return need.reshape(values.shape)


def text_rows(chunk: np.ndarray, delimiter: str) -> list[bytes]:
    """Each row as shortest-round-trip decimals (``%g`` at :func:`round_trip_digits`), without line ends."""
    n, d = chunk.shape
    if n == 0:
        return []
    # One printf format per row, "%.Pg" with each value's own P, built as bytes without a Python loop per value.
    spec = np.frombuffer(b"%.9g" + delimiter.encode("ascii"), dtype=np.uint8)
    formats = np.tile(spec, (n, d, 1))
    formats[:, :, 2] = ord("0") + round_trip_digits(chunk)
    formats = formats.reshape(n, d * spec.size)
    rows = chunk.astype(np.float64).tolist()
    return [formats[r].tobytes()[:-1] % tuple(rows[r]) for r in range(n)]


def write_text(path: Path, tokens: Sequence[str], dim: int, chunks: Iterable[np.ndarray]) -> None:
    """Word2Vec text (gensim-compatible): ``N D``, then ``word v1 … vD`` per line.

    Args:
        tokens: one per row, UTF-8 encodable, without whitespace (the caller checks).
        chunks: the float32 rows in order, a block at a time.
    """
    with path.open("wb") as f:
        f.write(f"{len(tokens)} {dim}\n".encode())
        s = 0
        for chunk in chunks:
            lines = text_rows(chunk, " ")
            f.write(b"".join(t.encode("utf-8") + b" " + line + b"\n"
                             for t, line in zip(tokens[s:s + len(lines)], lines, strict=True)))
            s += len(lines)


def write_binary(path: Path, tokens: Sequence[str], dim: int, chunks: Iterable[np.ndarray]) -> None:
    """Google's binary format, as :func:`load_binary` reads it: ``N D``, then per word ``word `` + D float32."""
    with path.open("wb") as f:
        f.write(f"{len(tokens)} {dim}\n".encode())
        s = 0
        for chunk in chunks:
            le = chunk.astype("<f4", copy=False)
            # gensim writes no newline after a vector; its reader and ours skip one if present.
            f.write(b"".join(tokens[s + i].encode("utf-8") + b" " + le[i].tobytes() for i in range(le.shape[0])))
            s += le.shape[0]
