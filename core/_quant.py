"""Low-precision number formats in numpy: bfloat16 rounding and per-row int8.

Shared by the quantisation-impact comparison (:mod:`core.compare`), which asks what a runtime in these
formats would compute, and by the int8 first pass of the neighbour search (:mod:`core._int8_index`).
Everything here is pure numpy: no torch needed to know what a bf16 or int8 copy holds.
"""

from __future__ import annotations

import numpy as np

_U16 = np.uint32(16)


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bits (uint16), rounded to nearest, ties to even (as torch does); NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> _U16) & np.uint32(1))) >> _U16
    nan = np.isnan(x)
    if nan.any():
        rounded = np.where(nan, (bits >> _U16) | np.uint32(0x0040), rounded)
    return rounded.astype(np.uint16)


def bf16_round(x: np.ndarray) -> np.ndarray:
    """The float32 values that a bfloat16 copy of ``x`` holds (round to nearest even)."""
    return (bf16_bits(x).astype(np.uint32) << _U16).view(np.float32)


def bf16_ceil(x: np.ndarray) -> np.ndarray:
    """The smallest bfloat16 values ≥ ``x`` (finite, non-negative ``x``), as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    up = (bits & np.uint32(0xFFFF)) != 0
    return (((bits >> _U16) + up.astype(np.uint32)) << _U16).view(np.float32)


def int8_rows(x: np.ndarray, scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8: q = round(x / s) in [-127, 127] with s = max|x| / 127 (0 for an all-zero row).

    Args:
        x: rows (n × d).
        scale: the per-row scales to use instead of max|x| / 127 (e.g. rounded to a coarser format).

    Returns:
        (q, scale): int8 values and float32 scales; ``q * scale[:, None]`` is the dequantised copy.
        Non-finite values become 0.
    """
    x = np.asarray(x, dtype=np.float32)
    if scale is None:
        with np.errstate(invalid="ignore"):
            absmax = np.max(np.abs(x), axis=1)
        scale = (absmax / np.float32(127.0)).astype(np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    safe = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1.0))
    with np.errstate(invalid="ignore"):
        # float64: a float32 quotient can land on .5 exactly where the true one does not.
        q = np.clip(np.rint(x.astype(np.float64) / safe[:, None].astype(np.float64)), -127, 127)
    q = np.where(np.isfinite(q), q, 0).astype(np.int8)
    scale = np.where(np.isfinite(scale), scale, np.float32(0.0)).astype(np.float32)
    return q, scale
