"""Quantisation impact: fp16, bf16 and int8 copies of a matrix, what they cost, and writing one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core._io import atomic_dir
from core.compare._approx import NNDescentWorker, choose_search
from core.compare._common import _CHUNK_VALUES, _check_int, _span
from core.compare._neighbors import _neighbors
from core.compare._result import Comparison
from core.compare._run import _compare
from core.errors import ParameterError
from core.loaders._common import write_vocab
from core.loaders._safetensors import WEIGHTS_FILE, write_tensors
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

if TYPE_CHECKING:
    import pandas as pd

    from core.export import Exported

#: Quantised formats a matrix can be compared with: half precision, bfloat16, int8 with one scale per row.
QUANT_FORMATS: tuple[str, ...] = ("fp16", "bf16", "int8")
#: Bytes per value of each format (int8 adds one float32 scale per row).
QUANT_BYTES = {"fp16": 2, "bf16": 2, "int8": 1}


def _check_format(fmt: str) -> None:
    if fmt not in QUANT_FORMATS:
        raise ParameterError(f"format={fmt!r}: must be one of {', '.join(QUANT_FORMATS)}")


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bits (uint16), rounded to nearest, ties to even (as torch does); NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(x)
    if nan.any():
        rounded = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x0040), rounded)
    return rounded.astype(np.uint16)


def _int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8: q = round(x / s) in [-127, 127] with s = max|x| / 127 (0 for an all-zero row)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        absmax = np.max(np.abs(x), axis=1)
    scale = (absmax / np.float32(127.0)).astype(np.float32)
    safe = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1.0))
    with np.errstate(invalid="ignore"):
        # float64: a float32 quotient can land on .5 exactly where the true one does not.
        q = np.clip(np.rint(x.astype(np.float64) / safe[:, None].astype(np.float64)), -127, 127)
    q = np.where(np.isfinite(q), q, 0).astype(np.int8)
    scale = np.where(np.isfinite(scale), scale, np.float32(0.0)).astype(np.float32)
    return q, scale


def _quantized_chunk(x: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    if fmt == "bf16":
        return (_bf16_bits(x).astype(np.uint32) << np.uint32(16)).view(np.float32)
    q, scale = _int8(x)
    return q.astype(np.float32) * scale[:, None]


def quantize(m: EmbeddingMatrix, fmt: str) -> EmbeddingMatrix:
    """A copy of ``m`` whose values went through ``fmt`` and back to float32 (what a runtime would compute with).

    fp16: IEEE half (values past ±65,504 become ±inf); bf16: bfloat16, round to nearest even; int8: one
    absmax scale per row, values rounded to −127..127.

    Raises:
        ParameterError: an unknown format.
    """
    _check_format(fmt)
    out = np.empty(m.shape, dtype=np.float32)
    step = max(1, _CHUNK_VALUES // max(1, m.dim))
    for s in range(0, len(m), step):
        out[s:s + step] = _quantized_chunk(np.asarray(m.vectors[s:s + step], dtype=np.float32), fmt)
    notes = (*m.provenance.notes, f"values went through {fmt} and back to float32")
    prov = replace(m.provenance, format="derived", dtype=fmt, notes=notes,
                   key=f"{m.provenance.key or m.fingerprint}:{fmt}",
                   extra={"quantized_from": m.fingerprint, "quantization": fmt})
    return m.with_vectors(out, prov)


def quantized_bytes(m: EmbeddingMatrix, fmt: str) -> int:
    """Bytes the matrix's values take in ``fmt`` (int8 adds one float32 scale per row)."""
    _check_format(fmt)
    rows, dim = m.shape
    return rows * dim * QUANT_BYTES[fmt] + (rows * 4 if fmt == "int8" else 0)


@dataclass(frozen=True, eq=False)
class QuantImpact:
    """What one format costs: bytes saved, drift and neighbourhood change against the float32 original."""

    format: str
    bytes: int
    bytes_float32: int
    comparison: Comparison
    overflow: int = 0

    def to_json(self) -> dict[str, Any]:
        s = self.comparison.summary()
        return {"format": self.format, "bytes": self.bytes, "bytes_float32": self.bytes_float32,
                "saved": 1.0 - self.bytes / max(self.bytes_float32, 1), "mean_drift": s.mean_drift,
                "p99_drift": s.p99_drift, "max_drift": s.max_drift, "median_jaccard": s.median_jaccard,
                "mean_jaccard": s.mean_jaccard, "changed_share": s.changed_share, "overflow": self.overflow}


@dataclass(frozen=True, eq=False)
class QuantReport:
    """:func:`quantization_impact`'s answer: one :class:`QuantImpact` per format."""

    impacts: list[QuantImpact]
    k: int
    search: str = "exact"

    def frame(self) -> pd.DataFrame:
        """format, MiB, saved, mean/p99/max drift, median/mean Jaccard@k, changed share, overflow."""
        import pandas as pd

        rows = []
        for imp in self.impacts:
            j = imp.to_json()
            rows.append({"format": imp.format, "MiB": imp.bytes / 2**20, "saved": j["saved"],
                         "mean_drift": j["mean_drift"], "p99_drift": j["p99_drift"], "max_drift": j["max_drift"],
                         "median_jaccard": j["median_jaccard"], "mean_jaccard": j["mean_jaccard"],
                         "changed_share": j["changed_share"], "overflow": imp.overflow})
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "formats": [i.to_json() for i in self.impacts], "search": self.search}


def quantization_impact(m: EmbeddingMatrix, formats: Sequence[str] = QUANT_FORMATS, *, k: int = 10,
                        limit: int | None = None, device: str = "auto", search: str = "auto",
                        progress: ProgressFn | None = None,
                        cancel: CancelFn | None = None) -> QuantReport:
    """Compare ``m`` with its own fp16, bf16 and int8 copies, made on the fly: drift and Jaccard@k per format.

    A's neighbours are searched once and shared by every format; the copies share A's space, so no
    rotation is fitted. ``search`` as in :func:`core.compare.compare` (the report's ``search`` says which).

    Raises:
        ParameterError: an unknown or repeated format, or a bad k/limit/search. Cancelled: through ``cancel``.
    """
    fmts = list(formats)
    if not fmts:
        raise ParameterError("formats: choose at least one of " + ", ".join(QUANT_FORMATS))
    for f in fmts:
        _check_format(f)
    if len(set(fmts)) != len(fmts):
        raise ParameterError("formats: a format is listed twice")
    k = _check_int("k", k, 1)
    report = Reporter(progress, cancel)
    vocab_all = np.arange(len(m), dtype=np.int64)
    rows = vocab_all if limit is None else vocab_all[:_check_int("limit", limit, 2)]
    if k > rows.size - 1:
        raise ParameterError(f"k={k}: only {rows.size:,} tokens are compared; choose k ≤ {rows.size - 1:,}")
    share = 1.0 / (len(fmts) + 1)
    how = choose_search(search, int(rows.size), m.dim, device)
    with NNDescentWorker() as worker:  # one child for every copy's graph, started only if one is built
        nb_a, sc_a = _neighbors(m, rows, k, device, _span(report, 0.0, share, f"{k} neighbours of {rows.size:,} "
                                                          "tokens in the original"), cancel, how, worker)
        impacts = []
        for i, fmt in enumerate(fmts):
            report(share * (i + 1), f"{fmt} copy")
            q = quantize(m, fmt)
            overflow = int(np.count_nonzero(~np.isfinite(q.norms) & np.isfinite(m.norms)))
            c = _compare(m, q, k=k, align=False, align_on=None, tokens=None, limit=limit, allow_same=True,
                         device=device, progress=_span(report, share * (i + 1), share * (i + 2), f"{fmt}: neighbours"),
                         cancel=cancel, known_a=(rows, nb_a, sc_a), search=how, worker=worker)
            c = replace(c, alignment=f"none: B is the {fmt} copy of A, so both share one space")
            impacts.append(QuantImpact(fmt, quantized_bytes(m, fmt), len(m) * m.dim * 4, c, overflow))
    report(1.0, "done")
    return QuantReport(impacts, k, how)


def export_quantized(m: EmbeddingMatrix, fmt: str, out: str | os.PathLike[str], *, force: bool = False,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Exported:
    """Write the ``fmt`` copy of ``m`` as a new safetensors folder (with its vocabulary), atomically.

    fp16 and bf16 are stored as F16/BF16 tensors named :data:`core.export.TENSOR_NAME`; :func:`core.load`
    reads them back to exactly :func:`quantize`'s values. int8 is stored as an I8 tensor
    ``<name>.int8`` and an F32 tensor ``<name>.scale`` (one per row: value = int8 × scale), the form a
    runtime dequantises; Embedscope opens the fp16/bf16 folders, and :func:`quantize` gives the int8 values.

    The vocabulary files are those :func:`core.export.export` writes for safetensors (the same writer).

    Raises:
        ParameterError: unknown format, or ``out`` is a source of ``m``.
        OutputExistsError: ``out`` exists and ``force`` is not set.
        Cancelled: through ``cancel``; nothing is left behind.
    """
    from core import export as ex

    _check_format(fmt)
    report = Reporter(progress, cancel)
    target = Path(out).expanduser()
    sources = ex.sources_of(m)
    report(0.0, f"{fmt}: converting")
    tensors: dict[str, np.ndarray] = {}
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            tensors[ex.TENSOR_NAME] = np.asarray(m.vectors, dtype=np.float32).astype(np.float16)
    elif fmt == "bf16":
        tensors[ex.TENSOR_NAME] = _bf16_bits(np.asarray(m.vectors, dtype=np.float32))
    else:
        q, scale = _int8(np.asarray(m.vectors, dtype=np.float32))
        tensors[f"{ex.TENSOR_NAME}.int8"] = q
        tensors[f"{ex.TENSOR_NAME}.scale"] = scale
    report(0.4, f"{fmt}: writing")
    meta = {"format": "pt", "written_by": "embedscope", "quantization": fmt, "source_fingerprint": m.fingerprint,
            "rows": str(len(m)), "dim": str(m.dim)}
    if fmt == "int8":
        meta["dequantize"] = f"{ex.TENSOR_NAME} = {ex.TENSOR_NAME}.int8 * {ex.TENSOR_NAME}.scale[:, None]"
    with atomic_dir(target, force=force, sources=sources) as tmp:
        vocab_files, _ = write_vocab(tmp, m.index_to_key, m.tokenizer, plain_txt=False)
        report(0.6, f"{fmt}: writing")
        write_tensors(tmp / WEIGHTS_FILE, tensors, meta, bf16=fmt == "bf16")
        report(0.95, "done")
    files = [target / WEIGHTS_FILE, *(target / f for f in vocab_files)]
    notes = [f"values stored as {fmt} ({quantized_bytes(m, fmt) / 2**20:,.1f} MiB instead of "
             f"{len(m) * m.dim * 4 / 2**20:,.1f} MiB)"]
    if fmt == "int8":
        notes.append(f"int8 values in {ex.TENSOR_NAME}.int8 with one float32 scale per row in "
                     f"{ex.TENSOR_NAME}.scale; value = int8 × scale")
    else:
        notes.append(f"the tensor is named {ex.TENSOR_NAME!r}; core.load reads it back as float32")
    report(1.0, "done")
    return ex.Exported("safetensors", target, tuple(files), len(m), m.dim, tuple(notes))


