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

Numbers in text formats are the shortest decimal that reads back to the same float32. Each format is written
by the loader module that reads it (``core/loaders/_word2vec.py``, ``_tsv.py``, ``_safetensors.py``,
``_arrays.py``); this module checks what is asked, chooses the rows and dispatches.
"""

from __future__ import annotations

import io
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
from core.loaders import _arrays, _safetensors, _tsv, _word2vec
from core.loaders._common import write_vocab
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

if TYPE_CHECKING:
    import pandas as pd

    from core.projection import Projection

#: Formats :func:`export` writes.
EXPORT_FORMATS = ("projector", "word2vec", "word2vec-bin", "safetensors", "npy")
#: Formats written as a folder of files (the others are one file).
FOLDER_FORMATS = frozenset({"projector", "safetensors", "npy"})
#: The tensor name in exported safetensors: one the Hugging Face loader finds without ``tensor=``.
TENSOR_NAME = _safetensors.TENSOR_NAME
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


def _chunks(m: EmbeddingMatrix, idx: np.ndarray | None, report: Reporter, what: str) -> Iterator[np.ndarray]:
    """The float32 rows in chunks, so memory stays at one chunk whatever the matrix size."""
    n = len(m) if idx is None else int(idx.size)
    for s in range(0, n, _CHUNK_ROWS):
        report(s / max(n, 1), f"{what}: row {s:,} of {n:,}")
        rows = m.vectors[s:s + _CHUNK_ROWS] if idx is None else m.vectors[idx[s:s + _CHUNK_ROWS]]
        yield np.asarray(rows, dtype=np.float32)


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


def _metadata_values(m: EmbeddingMatrix, idx: np.ndarray | None, tokens: list[str],
                     columns: list[str]) -> dict[str, list[str]]:
    """The Projector's metadata columns as text, refused where a value holds a tab or a line break."""
    meta = m.metadata if idx is None else m.metadata.iloc[idx]
    values = {c: (tokens if c == "token" else meta[c].astype(str).tolist()) for c in columns}
    for c in columns:
        _check_strings(values[c], "\t\n\r", f"values of metadata column {c!r}", "projector",
                       "the Projector's TSV has no escaping; leave the column out or choose another format")
    return values


def _gathered(m: EmbeddingMatrix, idx: np.ndarray | None, report: Reporter, fmt: str) -> np.ndarray:
    """The rows to write as one float32 array (safetensors and npy write it whole)."""
    report(0.1, f"{fmt}: gathering rows")
    arr = np.ascontiguousarray(m.vectors if idx is None else m.vectors[idx], dtype=np.float32)
    report(0.5, f"{fmt}: writing")
    return arr


def _write_folder(m: EmbeddingMatrix, folder: Path, format: str, idx: np.ndarray | None, tokens: list[str],
                  columns: list[str], report: Reporter) -> tuple[list[str], list[str]]:
    """Write a folder format through its loader module; returns the file names and the notes."""
    if format == "projector":
        values = _metadata_values(m, idx, tokens, columns)
        return _tsv.write_projector(folder, values, _chunks(m, idx, report, "vectors.tsv"))
    if format == "safetensors":
        names, notes = _safetensors.write_float32(folder, _gathered(m, idx, report, format), m.provenance.tensor)
        files, vnotes = write_vocab(folder, tokens, m.tokenizer, plain_txt=False, subset=idx is not None)
        return [*names, *files], [*notes, *vnotes]
    names = _arrays.write_npy(folder, _gathered(m, idx, report, format))
    files, vnotes = write_vocab(folder, tokens, m.tokenizer, plain_txt=True, subset=idx is not None)
    return [*names, *files], vnotes


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
        write, what = ((_word2vec.write_text, "word2vec text") if format == "word2vec"
                       else (_word2vec.write_binary, "word2vec binary"))
        with atomic_file(target, force=force, sources=sources) as tmp:
            write(tmp, tokens, m.dim, _chunks(m, idx, report, what))
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
        names, notes = _write_folder(m, tmp, format, idx, tokens, cols, report)
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
