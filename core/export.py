"""Writing a matrix (or some of its rows) to files other tools read, plus projected coordinates and charts.

Every matrix export reloads through :func:`core.load` to the same tokens and the same float32 values
(:func:`verify` checks it), and is written atomically into a new path: a temp name beside the target, then a
rename. An existing target needs ``force=True``; a source file of the matrix is refused even then.

    >>> import core
    >>> from core import export
    >>> m = core.load("demo")
    >>> out = export.export(m, "minilm-projector", "projector")   # vectors.tsv + metadata.tsv
    >>> export.verify(m, out).shape
    (30522, 384)

| format         | what is written (``out`` is…)                                                   |
|----------------|-------------------------------------------------------------------------------|
| ``projector``    | a folder: ``vectors.tsv`` + ``metadata.tsv`` (header row only with >1 column)    |
| ``word2vec``     | a file: ``N D`` header, then ``word v1 … vD`` per line (gensim-compatible)       |
| ``word2vec-bin`` | a file: ``N D`` header, then ``word`` + space + D little-endian float32 per word |
| ``safetensors``  | a folder: ``model.safetensors`` + ``tokenizer.json`` (the model's) or ``vocab.json`` |
| ``npy``          | a folder: ``vectors.npy`` + ``vocab.txt`` (+ ``tokenizer.json`` when it is the model's) |

Numbers in text formats are the shortest decimal that reads back to the same float32.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core._io import atomic_dir, atomic_file, check_target
from core.errors import FormatError, ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.tokens import HFTokenizer

if TYPE_CHECKING:
    import pandas as pd

    from core.projection import Projection

#: Formats :func:`export` writes.
EXPORT_FORMATS = ("projector", "word2vec", "word2vec-bin", "safetensors", "npy")
#: Formats written as a folder of files (the others are one file).
FOLDER_FORMATS = frozenset({"projector", "safetensors", "npy"})
#: The tensor name in exported safetensors: one the Hugging Face loader finds without ``tensor=``.
TENSOR_NAME = "word_embeddings.weight"
#: Image formats for charts.
IMAGE_FORMATS = ("png", "svg")

_CHUNK_ROWS = 4096
# Suffixes the loaders read as another format: a word2vec file named like this would not reopen.
_OTHER_SUFFIXES = (".tsv", ".npy", ".safetensors", ".pdparams")


@dataclass(frozen=True)
class Exported:
    """What an export wrote.

    Attributes:
        format: one of :data:`EXPORT_FORMATS`.
        target: the file or folder to pass to :func:`core.load`.
        files: every file written.
        rows, dim: the shape written.
        notes: choices the user should know about (which vocabulary file, which columns).
    """

    format: str
    target: Path
    files: tuple[Path, ...]
    rows: int
    dim: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``export --json`` shape."""
        return {"format": self.format, "out": str(self.target), "files": [str(f) for f in self.files],
                "rows": self.rows, "dim": self.dim, "notes": list(self.notes)}


# -- helpers ---------------------------------------------------------------------------------------

def _indices(m: EmbeddingMatrix, rows: Sequence[int] | np.ndarray | None) -> np.ndarray | None:
    if rows is None:
        return None
    idx = np.asarray(rows, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ParameterError("rows: no rows to export; select at least one")
    if idx.min() < 0 or idx.max() >= len(m):
        raise ParameterError(f"rows: row ids must run from 0 to {len(m) - 1}")
    if np.unique(idx).size != idx.size:
        raise ParameterError("rows: a row is listed twice; every exported token must be unique")
    return idx


def _tokens(m: EmbeddingMatrix, idx: np.ndarray | None) -> list[str]:
    return list(m.index_to_key) if idx is None else [m.index_to_key[i] for i in idx.tolist()]


def _chunks(m: EmbeddingMatrix, idx: np.ndarray | None, report: Reporter,
            what: str) -> Iterator[tuple[int, np.ndarray]]:
    """(start, float32 rows) in chunks, so memory stays at one chunk whatever the matrix size."""
    n = len(m) if idx is None else int(idx.size)
    for s in range(0, n, _CHUNK_ROWS):
        report(s / max(n, 1), f"{what}: row {s:,} of {n:,}")
        rows = m.vectors[s:s + _CHUNK_ROWS] if idx is None else m.vectors[idx[s:s + _CHUNK_ROWS]]
        yield s, np.asarray(rows, dtype=np.float32)


def _digits(values: np.ndarray) -> np.ndarray:
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


def _text_rows(chunk: np.ndarray, delimiter: str) -> list[bytes]:
    """Each row as shortest-round-trip decimals (``%g`` at the digits :func:`_digits` finds), without line ends."""
    n, d = chunk.shape
    if n == 0:
        return []
    # One printf format per row, "%.Pg" with each value's own P, built as bytes without a Python loop per value.
    spec = np.frombuffer(b"%.9g" + delimiter.encode("ascii"), dtype=np.uint8)
    formats = np.tile(spec, (n, d, 1))
    formats[:, :, 2] = ord("0") + _digits(chunk)
    formats = formats.reshape(n, d * spec.size)
    rows = chunk.astype(np.float64).tolist()
    return [formats[r].tobytes()[:-1] % tuple(rows[r]) for r in range(n)]


def _check_strings(values: Sequence[str], forbidden: str, what: str, fmt: str, hint: str) -> None:
    """Refuse values the format cannot hold, naming the first few and their rows."""
    bad = [(i, v) for i, v in enumerate(values) if any(c in v for c in forbidden)]
    if bad:
        shown = ", ".join(f"{v!r} (row {i})" for i, v in bad[:3])
        names = {" ": "spaces", "\t": "tabs", "\n": "line breaks", "\r": "carriage returns"}
        chars = " or ".join(names[c] for c in forbidden)
        raise ParameterError(f"format={fmt!r}: {len(bad):,} {what} contain {chars}, which this format cannot "
                             f"hold: {shown}; {hint}")


def _check_utf8(tokens: Sequence[str], fmt: str) -> None:
    for i, t in enumerate(tokens):
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as err:
            raise ParameterError(f"format={fmt!r}: token {t!r} (row {i}) cannot be written as UTF-8 ({err.reason}); "
                                 "choose safetensors or npy") from err


def _check_finite(m: EmbeddingMatrix, idx: np.ndarray | None, fmt: str) -> None:
    """Refuse NaN/Inf rows for TSV, where readers (the Projector's and ours) take "nan" for a missing value."""
    rows = np.arange(len(m)) if idx is None else idx
    # The cached norms are non-finite for every such row (and, rarely, for huge finite rows: checked below).
    suspects = rows[~np.isfinite(m.norms[rows])]
    bad = [int(i) for i in suspects.tolist() if not np.all(np.isfinite(m.vectors[i]))]
    if bad:
        shown = ", ".join(f"{i} ({m.index_to_key[i]!r})" for i in bad[:3])
        raise ParameterError(f"format={fmt!r}: {len(bad):,} rows hold NaN or Inf values, which TSV readers take "
                             f"for missing values: rows {shown}; leave those rows out (the Health page lists "
                             "them) or choose word2vec, safetensors or npy")


def sources_of(m: EmbeddingMatrix) -> list[Path]:
    """The files a matrix was read from (weights and the vocabulary beside them): never written over."""
    p = m.provenance.path
    if not p:
        return []
    path = Path(p)
    out = [path, *(Path(str(f)) for f in m.provenance.extra.get("read", ()))]  # type: ignore[attr-defined]
    folder = path if path.is_dir() else path.parent
    for name in ("tokenizer.json", "vocab.txt", "vocab.json", "metadata.tsv", "tokenizer_config.json"):
        if (folder / name).is_file():
            out.append(folder / name)
    return out


def _faithful_tokenizer(m: EmbeddingMatrix, idx: np.ndarray | None) -> HFTokenizer | None:
    """The model tokenizer, when writing it reproduces exactly these tokens (every row, ids unchanged)."""
    if idx is not None or not isinstance(m.tokenizer, HFTokenizer):
        return None
    from core.loaders._common import fit_vocab

    tokens, _ = fit_vocab(m.tokenizer, len(m))
    return m.tokenizer if tokens == list(m.index_to_key) else None


def _metadata_columns(m: EmbeddingMatrix, columns: Sequence[str] | None) -> list[str]:
    df_cols = list(m.metadata.columns)
    extra = [c for c in df_cols if c not in ("id", "token", "kind")]
    chosen = ["token", *extra] if columns is None else list(dict.fromkeys(["token", *columns]))
    unknown = [c for c in chosen if c not in df_cols]
    if unknown:
        raise ParameterError(f"columns: {', '.join(map(repr, unknown))} not in the metadata; choose from "
                             f"{', '.join(df_cols)}")
    clash = [c for c in chosen[1:] if c.lower() == "token"]
    if clash:
        raise ParameterError(f"columns: {clash[0]!r} would be read back as the token column; leave it out")
    return chosen


# -- the formats -----------------------------------------------------------------------------------

def _write_projector(m: EmbeddingMatrix, folder: Path, idx: np.ndarray | None, columns: list[str],
                     report: Reporter) -> tuple[list[str], list[str]]:
    tokens = _tokens(m, idx)
    meta = m.metadata if idx is None else m.metadata.iloc[idx]
    values = {c: (tokens if c == "token" else meta[c].astype(str).tolist()) for c in columns}
    for c in columns:
        _check_strings(values[c], "\t\n\r", f"values of metadata column {c!r}", "projector",
                       "the Projector's TSV has no escaping; leave the column out or choose another format")
    with (folder / "vectors.tsv").open("wb") as f:
        for _, chunk in _chunks(m, idx, report, "vectors.tsv"):
            for line in _text_rows(chunk, "\t"):
                f.write(line + b"\n")
    with (folder / "metadata.tsv").open("w", encoding="utf-8", newline="") as f:
        if len(columns) > 1:  # the Projector's rule: a header row only with more than one column
            f.write("\t".join(columns) + "\n")
        for row in zip(*(values[c] for c in columns), strict=True):
            f.write("\t".join(row) + "\n")
    note = ("metadata.tsv has one column (the tokens) and no header row" if len(columns) == 1 else
            f"metadata.tsv has a header row and the columns {', '.join(columns)}")
    return ["vectors.tsv", "metadata.tsv"], [note]


def _write_word2vec_text(m: EmbeddingMatrix, path: Path, idx: np.ndarray | None, report: Reporter) -> None:
    tokens = _tokens(m, idx)
    with path.open("wb") as f:
        f.write(f"{len(tokens)} {m.dim}\n".encode())
        for s, chunk in _chunks(m, idx, report, "word2vec text"):
            lines = _text_rows(chunk, " ")
            f.write(b"".join(t.encode("utf-8") + b" " + line + b"\n"
                             for t, line in zip(tokens[s:s + len(lines)], lines, strict=True)))


def _write_word2vec_binary(m: EmbeddingMatrix, path: Path, idx: np.ndarray | None, report: Reporter) -> None:
    tokens = _tokens(m, idx)
    with path.open("wb") as f:
        f.write(f"{len(tokens)} {m.dim}\n".encode())
        for s, chunk in _chunks(m, idx, report, "word2vec binary"):
            le = chunk.astype("<f4", copy=False)
            # gensim writes no newline after a vector; its reader and ours skip one if present.
            f.write(b"".join(tokens[s + i].encode("utf-8") + b" " + le[i].tobytes() for i in range(le.shape[0])))


def _write_vocab(folder: Path, m: EmbeddingMatrix, idx: np.ndarray | None,
                 plain_txt: bool) -> tuple[list[str], list[str]]:
    """tokenizer.json when it is the model's and faithful; vocab.txt (npy) or vocab.json otherwise."""
    tokens = _tokens(m, idx)
    files: list[str] = []
    notes: list[str] = []
    tok = _faithful_tokenizer(m, idx)
    if tok is not None:
        tok.save(folder / "tokenizer.json")
        files.append("tokenizer.json")
        notes.append(f"tokenizer.json is the model's tokenizer ({tok.scheme}), so lookups work as before")
    line_safe = not any(("\n" in t or "\r" in t) for t in tokens)
    if plain_txt and line_safe:
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8", newline="")
        files.append("vocab.txt")
    elif tok is None or plain_txt:
        (folder / "vocab.json").write_text(json.dumps({"idx_to_token": tokens}, ensure_ascii=False),
                                           encoding="utf-8")
        files.append("vocab.json")
        if plain_txt:
            notes.append("some tokens hold line breaks, so the vocabulary is vocab.json (idx_to_token), not "
                         "vocab.txt")
    if tok is None and not plain_txt:
        notes.append("vocab.json lists the tokens (idx_to_token); no model tokenizer was written"
                     + (" because only some rows are exported" if idx is not None else ""))
    return files, notes


def _write_safetensors(m: EmbeddingMatrix, folder: Path, idx: np.ndarray | None,
                       report: Reporter) -> tuple[list[str], list[str]]:
    from safetensors.numpy import save_file

    report(0.1, "safetensors: gathering rows")
    arr = np.ascontiguousarray(m.vectors if idx is None else m.vectors[idx], dtype=np.float32)
    report(0.5, "safetensors: writing")
    meta = {"format": "np", "written_by": "embedscope", "rows": str(arr.shape[0]), "dim": str(arr.shape[1])}
    if m.provenance.tensor:
        meta["source_tensor"] = m.provenance.tensor
    save_file({TENSOR_NAME: arr}, str(folder / "model.safetensors"), metadata=meta)
    files, notes = _write_vocab(folder, m, idx, plain_txt=False)
    return ["model.safetensors", *files], [f"the tensor is named {TENSOR_NAME!r}", *notes]


def _write_npy(m: EmbeddingMatrix, folder: Path, idx: np.ndarray | None,
               report: Reporter) -> tuple[list[str], list[str]]:
    report(0.1, "npy: gathering rows")
    arr = np.ascontiguousarray(m.vectors if idx is None else m.vectors[idx], dtype=np.float32)
    report(0.5, "npy: writing")
    np.save(folder / "vectors.npy", arr, allow_pickle=False)
    files, notes = _write_vocab(folder, m, idx, plain_txt=True)
    return ["vectors.npy", *files], notes


def export(m: EmbeddingMatrix, out: str | os.PathLike[str], format: str, *,
           rows: Sequence[int] | np.ndarray | None = None, columns: Sequence[str] | None = None,
           force: bool = False, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Exported:
    """Write the matrix, or the given rows of it, in ``format``.

    Args:
        m: the matrix.
        out: a new folder (projector, safetensors, npy) or file (word2vec, word2vec-bin).
        format: one of :data:`EXPORT_FORMATS`.
        rows: row ids to write, in this order (default: every row).
        columns: Projector metadata columns after the token (default: the file's own extra columns);
            any of ``m.metadata``'s columns, e.g. "kind" or "id".
        force: replace an existing ``out``.
        progress, cancel: see :mod:`core.progress`; a cancelled export leaves nothing behind.

    Raises:
        ParameterError: unknown format, bad rows, tokens the format cannot hold, ``out`` is a source file.
        OutputExistsError: ``out`` exists and ``force`` is False.
        Cancelled: through ``cancel``.
    """
    if format not in EXPORT_FORMATS:
        raise ParameterError(f"format={format!r}: must be one of {', '.join(EXPORT_FORMATS)}")
    idx = _indices(m, rows)
    target = Path(out).expanduser()
    report = Reporter(progress, cancel)
    tokens = _tokens(m, idx)
    n = len(tokens)
    sources = sources_of(m)
    check_target(target, force, sources)  # the path first: its message matters more than a token's
    if format in ("word2vec", "word2vec-bin"):
        if target.suffix.lower() in _OTHER_SUFFIXES or target.name.endswith(".index.json"):
            raise ParameterError(f"out={target}: a word2vec file named like this would be read back as another "
                                 "format; end it in .txt, .vec or .bin")
        empty = [i for i, t in enumerate(tokens) if t == ""]
        if empty:
            raise ParameterError(f"format={format!r}: row {empty[0]} has an empty token, which word2vec files "
                                 "cannot hold; choose safetensors, npy or projector")
        _check_strings(tokens, " \t\n\r", "tokens", format,
                       "word2vec separates words by spaces; choose safetensors, npy or projector")
        _check_utf8(tokens, format)
        with atomic_file(target, force=force, sources=sources) as tmp:
            (_write_word2vec_text if format == "word2vec" else _write_word2vec_binary)(m, tmp, idx, report)
        report(1.0, "done")
        return Exported(format, target, (target,), n, m.dim)
    cols: list[str] = []
    if format == "projector":
        cols = _metadata_columns(m, columns)
        _check_strings(tokens, "\t\n\r", "tokens", format,
                       "the Projector's TSV has no escaping; choose safetensors or npy")
        _check_utf8(tokens, format)
        _check_finite(m, idx, format)
    elif columns is not None:
        raise ParameterError(f"columns: only the projector format writes metadata columns, not {format!r}")
    with atomic_dir(target, force=force, sources=sources) as tmp:
        if format == "projector":
            names, notes = _write_projector(m, tmp, idx, cols, report)
        elif format == "safetensors":
            names, notes = _write_safetensors(m, tmp, idx, report)
        else:
            names, notes = _write_npy(m, tmp, idx, report)
    report(1.0, "done")
    return Exported(format, target, tuple(target / f for f in names), n, m.dim, tuple(notes))


def verify(m: EmbeddingMatrix, exported: Exported, rows: Sequence[int] | np.ndarray | None = None) -> EmbeddingMatrix:
    """Reopen an export through :func:`core.load` and check it holds the same tokens and values.

    Returns:
        the reopened matrix.

    Raises:
        FormatError: a token or a value differs (naming the first row that does).
    """
    from core.loaders import load

    idx = _indices(m, rows)
    back = load(exported.target)
    tokens = _tokens(m, idx)
    if list(back.index_to_key) != tokens:
        first = next((i for i, (a, b) in enumerate(zip(back.index_to_key, tokens, strict=False)) if a != b),
                     min(len(back), len(tokens)))
        raise FormatError(f"{exported.target}: reopened with {len(back):,} tokens; row {first} differs from what "
                          "was exported")
    for s in range(0, len(back), 1 << 14):
        want = np.asarray(m.vectors[s:s + (1 << 14)] if idx is None else m.vectors[idx[s:s + (1 << 14)]],
                          dtype=np.float32)
        got = np.asarray(back.vectors[s:s + (1 << 14)], dtype=np.float32)
        if not np.array_equal(got, want, equal_nan=True):
            bad = int(np.flatnonzero(~np.all((got == want) | (np.isnan(got) & np.isnan(want)), axis=1))[0])
            raise FormatError(f"{exported.target}: row {s + bad} ({tokens[s + bad]!r}) reads back with other values")
    return back


def download_name(format: str, name: str = "embeddings") -> str:
    """The file name :func:`export_bytes` gives a download: the file itself, or ``NAME-FORMAT.zip``."""
    if format not in EXPORT_FORMATS:
        raise ParameterError(f"format={format!r}: must be one of {', '.join(EXPORT_FORMATS)}")
    if format in FOLDER_FORMATS:
        return f"{name}-{format}.zip"
    return name + {"word2vec": ".txt", "word2vec-bin": ".bin"}[format]


def export_bytes(m: EmbeddingMatrix, format: str, *, rows: Sequence[int] | np.ndarray | None = None,
                 columns: Sequence[str] | None = None, name: str = "embeddings",
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> tuple[bytes, str, str]:
    """An export as one download: the file itself, or a zip of the folder.

    Returns:
        (data, file name, MIME type).
    """
    file_name = download_name(format, name)
    with tempfile.TemporaryDirectory(prefix="embedscope-export-") as tmp:
        target = Path(tmp) / (name if format in FOLDER_FORMATS else file_name)
        done = export(m, target, format, rows=rows, columns=columns, progress=progress, cancel=cancel)
        if format not in FOLDER_FORMATS:
            return target.read_bytes(), file_name, "application/octet-stream"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for f in done.files:
                z.write(f, f"{name}/{f.name}")
        return buf.getvalue(), file_name, "application/zip"


# -- coordinates and charts -------------------------------------------------------------------------

def coordinates_frame(m: EmbeddingMatrix, projection: Projection) -> pd.DataFrame:
    """``token,id,x,y[,z]``: one row per projected point, in the projection's order."""
    import pandas as pd

    idx = projection.selection.indices
    df = pd.DataFrame({"token": [m.index_to_key[i] for i in idx.tolist()], "id": idx})
    for j, axis in enumerate("xyz"[: projection.dims]):
        df[axis] = projection.coords[:, j]
    return df


def coordinates_csv(m: EmbeddingMatrix, projection: Projection) -> str:
    """The coordinates as CSV text (tokens quoted where they hold commas, quotes or line breaks)."""
    return str(coordinates_frame(m, projection).to_csv(index=False, lineterminator="\n"))


def write_coordinates(m: EmbeddingMatrix, projection: Projection, out: str | os.PathLike[str],
                      force: bool = False) -> Path:
    """Write :func:`coordinates_csv` to a new file ``out``.

    Raises:
        OutputExistsError: ``out`` exists and ``force`` is False.
        ParameterError: ``out`` is a source file of the matrix.
    """
    target = Path(out).expanduser()
    with atomic_file(target, force=force, sources=sources_of(m)) as tmp:
        tmp.write_text(coordinates_csv(m, projection), encoding="utf-8", newline="")
    return target


def chart_image(chart: Any, format: str = "png", scale: float = 2.0) -> bytes:
    """An altair chart as PNG or SVG bytes (rendered by vl-convert, no browser).

    Raises:
        ParameterError: ``format`` is not png or svg.
    """
    import altair as alt
    import vl_convert as vlc

    if format not in IMAGE_FORMATS:
        raise ParameterError(f"format={format!r}: charts are saved as {' or '.join(IMAGE_FORMATS)}")
    # The page already keeps big views binned; lifting altair's 5,000-row guard lets a 10k-point scatter save.
    with alt.data_transformers.disable_max_rows():
        spec = chart.to_dict()
    if format == "png":
        return bytes(vlc.vegalite_to_png(spec, scale=scale))
    return str(vlc.vegalite_to_svg(spec)).encode("utf-8")


def write_chart(chart: Any, out: str | os.PathLike[str], format: str | None = None, force: bool = False) -> Path:
    """Save a chart to a new file; the format follows the suffix (.png or .svg) unless given."""
    target = Path(out).expanduser()
    fmt = format or target.suffix.lower().lstrip(".")
    data = chart_image(chart, fmt)
    with atomic_file(target, force=force) as tmp:
        tmp.write_bytes(data)
    return target


__all__ = [
    "EXPORT_FORMATS",
    "FOLDER_FORMATS",
    "IMAGE_FORMATS",
    "TENSOR_NAME",
    "Exported",
    "chart_image",
    "coordinates_csv",
    "coordinates_frame",
    "download_name",
    "export",
    "export_bytes",
    "sources_of",
    "verify",
    "write_chart",
    "write_coordinates",
]
