"""TensorFlow Embedding Projector TSV: ``vectors.tsv`` plus an optional ``metadata.tsv``.

The Projector's rules: vectors are tab-separated floats, one row a line, no header. Metadata with one
column has no header; with several columns the first row is the header. Extra columns are kept as
metadata for colouring. :func:`write_projector` writes the same pair (``core.export``'s ``projector``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from core.errors import FormatError
from core.loaders._common import ROW_NUMBERS, row_tokens, source_key
from core.loaders._word2vec import MAX_DIM, parse_block, text_rows
from core.matrix import EmbeddingMatrix, Provenance

_TOKEN_COLUMNS = ("token", "word", "label", "name", "text")


def _parse_vectors(path: Path) -> np.ndarray:
    """The tab-separated floats of ``vectors.tsv``, parsed as word2vec text is."""
    data = path.read_bytes()
    if not data.strip():
        raise FormatError(f"{path}: the file is empty")
    nl = data.find(b"\n")
    first = data[: nl if nl >= 0 else len(data)].rstrip(b"\r\t ")
    # Counted before splitting anything: a hostile first line can hold millions of columns.
    d = first.count(b"\t") + 1
    if d > MAX_DIM:
        raise FormatError(f"{path}: line 1: {d:,} tab-separated values, more than the {MAX_DIM:,} values "
                          "per row Embedscope reads; this is not a Projector vectors file")
    lines = data.split(b"\n")
    rows = [ln for ln in lines if ln and not ln.isspace()]
    values = parse_block(rows, "\t", d) if all(ln.count(b"\t") == d - 1 for ln in rows) else None
    if values is not None:
        return values
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.rstrip(b"\r").split(b"\t")
        if len(fields) != d:
            raise FormatError(f"{path}: line {no}: expected {d} tab-separated values (as on line 1), "
                              f"found {len(fields)}")
        for v in fields:
            try:
                float(v)
            except ValueError:
                raise FormatError(f"{path}: line {no}: {v[:40]!r} is not a number") from None
    # Python reads what numpy did not (e.g. "1_000"): parse line by line.
    return np.asarray([[float(v) for v in ln.rstrip(b"\r").split(b"\t")] for ln in rows], dtype=np.float32)


def _read_metadata(path: Path, rows: int, vectors_path: Path) -> tuple[list[str], dict[str, list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not UTF-8 text (byte {err.start})") from err
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.rstrip("\r") for ln in lines]
    multi = bool(lines) and "\t" in lines[0]
    if multi:
        header, body = lines[0].split("\t"), lines[1:]
        if len(body) != rows:
            raise FormatError(f"{path} has {len(body)} metadata rows (after its header row) but {vectors_path} "
                              f"has {rows} vectors; the Projector needs exactly one metadata row per vector")
        cols: dict[str, list[str]] = {h: [] for h in header}
        for no, ln in enumerate(body, start=2):
            fields = ln.split("\t")
            if len(fields) != len(header):
                raise FormatError(f"{path}: line {no}: {len(fields)} columns, but the header has {len(header)}")
            for h, v in zip(header, fields, strict=True):
                cols[h].append(v)
        lower = {h.lower(): h for h in header}
        key = next((lower[c] for c in _TOKEN_COLUMNS if c in lower), header[0])
        return cols[key], cols
    if len(lines) != rows:
        raise FormatError(f"{path} has {len(lines)} metadata rows but {vectors_path} has {rows} vectors; the "
                          "Projector needs exactly one metadata row per vector (a header row only when there "
                          "are several columns)")
    return lines, {"label": lines}


def _unique(labels: list[str]) -> tuple[list[str], int]:
    seen: dict[str, int] = {}
    out = []
    repeats = 0
    for lab in labels:
        if lab in seen:
            seen[lab] += 1
            repeats += 1
            out.append(f"{lab} #{seen[lab]}")
        else:
            seen[lab] = 1
            out.append(lab)
    return out, repeats


def load_tsv(path: Path, metadata: str | os.PathLike[str] | None = None) -> EmbeddingMatrix:
    """Projector ``vectors.tsv`` (a file, or a folder holding it) and its ``metadata.tsv``."""
    vpath = path / "vectors.tsv" if path.is_dir() else path
    if not vpath.is_file():
        raise FormatError(f"{path}: no vectors.tsv here")
    vectors = _parse_vectors(vpath)
    mpath = Path(metadata) if metadata is not None else None
    if mpath is None:
        for cand in (vpath.with_name("metadata.tsv"), vpath.with_name(vpath.stem + "_metadata.tsv"),
                     vpath.with_name(vpath.stem.replace("vectors", "metadata") + ".tsv")):
            if cand.is_file() and cand != vpath:
                mpath = cand
                break
    notes: list[str] = []
    extra: dict[str, list[str]] = {}
    if mpath is not None:
        labels, extra = _read_metadata(mpath, vectors.shape[0], vpath)
        tokens, repeats = _unique(labels)
        if repeats:
            notes.append(f"{repeats} labels repeat; repeats are named 'label #2', 'label #3', ...")
        source = mpath.name
    else:
        tokens, source = row_tokens(vectors.shape[0]), ROW_NUMBERS
        notes.append("no metadata.tsv was found, so tokens are the row numbers")
    prov = Provenance(format="projector-tsv", path=str(vpath), dtype="float32 (text)",
                      file_bytes=vpath.stat().st_size, vocab_source=source, notes=tuple(notes),
                      key=source_key([vpath, *([mpath] if mpath else [])], "tsv"))
    return EmbeddingMatrix(vectors, tokens, provenance=prov, metadata=extra)


def write_projector(folder: Path, columns: Mapping[str, Sequence[str]],
                    chunks: Iterable[np.ndarray]) -> tuple[list[str], list[str]]:
    """``vectors.tsv`` and ``metadata.tsv`` in ``folder``, by the Projector's rules.

    Args:
        columns: metadata column name → one value per row, the token column first; values hold no tabs or
            line breaks (the caller checks: the Projector's TSV has no escaping).
        chunks: the float32 rows in order, a block at a time.

    Returns:
        the file names written, and a note on the metadata's shape.
    """
    with (folder / "vectors.tsv").open("wb") as f:
        for chunk in chunks:
            for line in text_rows(chunk, "\t"):
                f.write(line + b"\n")
    names = list(columns)
    with (folder / "metadata.tsv").open("w", encoding="utf-8", newline="") as f:
        if len(names) > 1:  # the Projector's rule: a header row only with more than one column
            f.write("\t".join(names) + "\n")
        for row in zip(*columns.values(), strict=True):
            f.write("\t".join(row) + "\n")
    note = ("metadata.tsv has one column (the tokens) and no header row" if len(names) == 1 else
            f"metadata.tsv has a header row and the columns {', '.join(names)}")
    return ["vectors.tsv", "metadata.tsv"], [note]
