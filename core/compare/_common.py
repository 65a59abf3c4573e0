"""Helpers every part of the comparison shares: read-only arrays, checked integers, progress spans."""

from __future__ import annotations

import numpy as np

from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn, Reporter

#: Rows per chunk for the per-token arithmetic (float64 copies of a chunk stay near 32 MiB).
_CHUNK_VALUES = 1 << 22


def positions_dtype(n: int) -> type[np.signedinteger]:
    """The integer type of neighbour positions among ``n`` compared tokens: int32 (half of int64's memory,
    10 MiB per side at 262,144 tokens and k = 10) unless ``n`` needs more."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _label(m: EmbeddingMatrix) -> str:
    return m.provenance.path or f"derived ({m.shape[0]}×{m.shape[1]})"


def _check_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r}: must be a whole number")
    if value < lo:
        raise ParameterError(f"{name}={value}: must be at least {lo}")
    return int(value)


def _span(report: Reporter, lo: float, hi: float, what: str) -> ProgressFn:
    def sub(fraction: float, message: str) -> None:
        report(lo + (hi - lo) * fraction, what)
    return sub

