"""Word2Vec text (``N D`` header), GloVe text (no header), ``.vec``, and Google's binary format.

Text files are parsed by Arrow's multi-threaded CSV reader (several times faster than a Python loop); when
it rejects a file we re-scan it line by line to name the exact line and what was wrong.

Policies, stated once:
- Tokens are UTF-8; invalid bytes become U+FFFD and a note counts them.
- A word that repeats is kept once (its first vector, as gensim does), with a warning naming it.
- ``nan``/``inf`` values are read as such; the health audit reports the rows.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from core.errors import FormatError
from core.loaders._common import source_key
from core.matrix import EmbeddingMatrix, Provenance


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
    _, d = hdr
    rest = head[nl + 1:]
    line_end = rest.find(b"\n")
    second = rest[: line_end if line_end >= 0 else len(rest)]
    # A text file's second line is a word and d numbers; a binary file's bytes almost never are.
    parts = second.rstrip(b"\r").split()
    try:
        if len(parts) == d + 1:
            [float(x) for x in parts[1:]]
            return "word2vec-text"
    except ValueError:
        pass
    return "word2vec-binary"


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


def _parse_slow(data: bytes, path: Path, d: int, first_line_no: int) -> tuple[list[bytes], np.ndarray]:
    """Line-by-line parse for what Arrow rejects but Python reads (``inf``, ``nan`` spellings)."""
    raw: list[bytes] = []
    rows: list[list[float]] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        fields = line.rstrip(b"\r").rstrip(b" ").split(b" ")
        if len(fields) != d + 1:
            raise _scan_for_error(data, path, d, first_line_no)
        raw.append(fields[0])
        rows.append([float(v) for v in fields[1:]])
    return raw, np.asarray(rows, dtype=np.float32).reshape(len(rows), d)


def _parse_text(data: bytes, path: Path, d: int, first_line_no: int) -> tuple[list[bytes], np.ndarray]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if not data.strip():
        return [], np.zeros((0, d), dtype=np.float32)
    nl = data.find(b"\n")
    first = data[: nl if nl >= 0 else len(data)].rstrip(b"\r")
    trailing = first.endswith(b" ")
    ncols = d + 1 + (1 if trailing else 0)
    names = [f"c{i}" for i in range(ncols)]
    types: dict[str, pa.DataType] = {"c0": pa.binary()}
    types.update({f"c{i}": pa.float32() for i in range(1, d + 1)})
    if trailing:
        types[names[-1]] = pa.string()
    try:
        table = pcsv.read_csv(
            pa.py_buffer(data),
            read_options=pcsv.ReadOptions(column_names=names, block_size=1 << 24),
            parse_options=pcsv.ParseOptions(delimiter=" ", quote_char=False, double_quote=False,
                                            escape_char=False, newlines_in_values=False),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False,
                                                quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        try:
            return _parse_slow(data, path, d, first_line_no)
        except ValueError:
            raise _scan_for_error(data, path, d, first_line_no) from err
    if trailing and table.column(names[-1]).null_count == 0:
        extra = table.column(names[-1])
        if any(v for v in extra.to_pylist()[:1000]):
            raise _scan_for_error(data, path, d, first_line_no)
    n = table.num_rows
    out_t = np.empty((d, n), dtype=np.float32)
    for i in range(d):
        col = table.column(i + 1)
        if col.null_count:  # Arrow reads "nan" as a missing value: let the line parser decide
            try:
                return _parse_slow(data, path, d, first_line_no)
            except ValueError:
                raise _scan_for_error(data, path, d, first_line_no) from None
        out_t[i] = col.to_numpy()
    raw = table.column(0).to_pylist()
    return raw, np.ascontiguousarray(out_t.T)


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
        if d == 0:
            raise FormatError(f"{path}: line 1: header says {n_header} rows of dimension 0")
    else:
        n_header = None
        fields = first.rstrip(b"\r").rstrip(b" ").split(b" ")
        d = len(fields) - 1
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
    if limit is not None:
        n = min(n, limit)
    width = 4 * d
    out = np.empty((n, d), dtype=np.float32)
    raw: list[bytes] = []
    pos = nl + 1
    size = len(data)
    for i in range(n):
        while pos < size and data[pos] in (10, 13):  # the optional newline after a vector
            pos += 1
        sp = data.find(b" ", pos, pos + 100_000)
        if sp < 0 or sp + 1 + width > size:
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
