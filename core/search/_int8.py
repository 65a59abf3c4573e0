"""An int8 first pass for single cosine queries on the CPU, with a proven error bound and exact rescoring.

One neighbour query is one pass over the whole matrix, and on a CPU that pass is bound by how fast the
rows can be read, not by arithmetic: float32 MiniLM is 47 MB per query. This index keeps every unit row
as int8 with one scale per row (a quarter of the bytes) and scores a query with torch's int8 kernel
(FBGEMM's dynamically quantised linear). It also knows, for every row, how far that approximate score can
be from the exact one, so it hands back only the rows that may still be among the ``k`` best: the search
rescores those exactly. The answer is the exact search's answer, not an approximation of it.

The query goes in as ``x̂``: ``q`` rounded to a grid ``δ·n`` (integers ``n``, 7 bits) chosen here, with two
extra entries ``−a·δ`` and ``(127 − a)·δ`` against zero weights so that the kernel's own quantisation of its
input (range / 127, ``reduce_range``) lands exactly on that grid and loses nothing more. For a row
``u = x / |x|`` and its int8 copy ``ŵ = w8 · σ``::

    q·u − y = q·(u − ŵ) + (q − x̂)·ŵ + (ŵ·x̂ − y)
    |q·u − y| ≤ |q|·r + |q − x̂|·|ŵ| + γ·|ŵ|·|x̂| + |y|·2⁻²⁰

``r = |u − ŵ|`` is measured per row when the index is built; the last two terms are the kernel's float
rounding (its integer products are exact: 7-bit inputs times 8-bit weights cannot saturate), and a constant
covers the float32 rounding of the exact scores themselves. The kernel is checked against those terms when
the index is built: an index whose kernel is off is not used, and neither is one where torch's int8 engine
is not FBGEMM (x86), since elsewhere the kernel is slower than the float32 scan.

The weights reach the kernel through public torch calls only: ``torch.quantize_per_channel`` (the
int8 rows times their scales, which it rounds back to exactly the same integers: checked when built) and
``torch.ops.quantized.linear_prepack`` / ``linear_dynamic``, the operators behind
``torch.ao.nn.quantized.dynamic.Linear``. torch marks its quantized-tensor constructors deprecated; if a
release drops them, the build returns None and every query scans in float32, with the same answers.

The index costs a quarter of the matrix's float32 bytes and about a second per 3·10⁷ values to build, plus
torch's import the first time. It is never built at a query: :meth:`core.search.SearchIndex.prepare`
attaches it, and only then do single queries go through it.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

#: Smaller matrices are scanned in float32 directly: the first pass would save microseconds.
MIN_ROWS = 4096
#: Queries answered through the index at once (one kernel call each); larger batches use the float32
#: engine, whose one product per chunk serves every query of the batch.
MAX_QUERIES = 1
#: Past this share of the rows in doubt the exact scan is cheaper than gathering and rescoring them.
MAX_CANDIDATE_SHARE = 1 / 32
#: torch's quantized engines whose int8 kernel is FBGEMM's (x86): elsewhere (QNNPACK on ARM) it is slower
#: than numpy's float32 product, and the index is not built.
ENGINES = ("x86", "fbgemm")
#: Rows per group of the rough cut (the k-th largest group maximum bounds the k-th score from below).
_SEG = 64
#: Values converted per chunk while building.
_CHUNK_VALUES = 1 << 22
_EPS32 = 2.0 ** -24
#: The kernel's input grid: integers in [0, 127] (``reduce_range``), so products of two int8 cannot saturate.
_LEVELS = 127


def _gamma(dim: int) -> float:
    """A bound on the relative error of a float32 dot product of length ``dim`` (with room to spare)."""
    return 4.0 * (dim + 16) * _EPS32


def _round_up_8bit(x: float) -> float:
    """The smallest float32 ≥ ``x`` (x > 0) with an 8-bit significand, so 127 × it is exact in float32."""
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    if struct.unpack("<f", struct.pack("<I", bits))[0] < x:  # float32(x) rounded down
        bits += 1
    bits = ((bits + 0xFFFF) >> 16) << 16
    return float(struct.unpack("<f", struct.pack("<I", bits))[0])


def grid_query(q: np.ndarray) -> np.ndarray:
    """``q`` on the kernel's exact grid, with the two range entries appended (float32, length dim + 2)."""
    lo, hi = min(float(q.min()), 0.0), max(float(q.max()), 0.0)
    if hi - lo <= 0 or not np.isfinite(hi - lo):
        return np.zeros(q.shape[0] + 2, dtype=np.float32)
    # 125 steps across the range leaves one step of room at each end for rounding.
    delta = _round_up_8bit((hi - lo) / (_LEVELS - 2) * (1 + 2 ** -10))
    below = math.ceil(-lo / delta)
    out = np.empty(q.shape[0] + 2, dtype=np.float32)
    np.multiply(np.rint(q / np.float32(delta)), np.float32(delta), out=out[:-2])
    out[-2:] = (-below * delta, (_LEVELS - below) * delta)
    return out


def _norm_up(v: np.ndarray) -> float:
    """|v| from a float32 sum of squares, rounded up past its rounding error (≤ len·2⁻²⁴ relative)."""
    return math.sqrt(float(np.dot(v, v))) * (1 + 4 * (v.shape[0] + 16) * _EPS32) + 1e-30


@dataclass(frozen=True)
class Estimate:
    """One query's approximate scores and what bounds their error (see the module's docstring).

    Attributes:
        y: approximate cosine of every row (float32, the padding rows included); the search overwrites
            rows it may not return with -inf.
        qn, a, const: the bound of row i is ``qn·resid[i] + a·wnorm[i] + |y[i]|·2⁻²⁰ + const``.
        xn: |x̂|, which bounds |y[i]| by 2·wnorm[i]·xn.
    """

    y: np.ndarray
    qn: float
    xn: float
    a: float
    const: float


@dataclass(frozen=True, eq=False)
class Int8Index:
    """int8 unit rows packed for the kernel, and what each row's copy is off by.

    Attributes:
        dim: the matrix's width (the packed rows have two more columns, all zero).
        packed: the kernel's packed weights (int8 with one float32 scale per row).
        wnorm: |ŵ| per row, rounded up (float32).
        resid: |u − ŵ| per row, rounded up (float32).

    The packed rows are padded with zero rows to a multiple of 64, so the kernel's output splits into 64
    groups without a copy; the padding scores are set to -inf before use.
    """

    dim: int
    packed: Any
    wnorm: np.ndarray
    resid: np.ndarray

    @cached_property
    def maxima(self) -> tuple[float, float]:
        """(max |ŵ|, max r) over all rows: one bound for every row, for the first rough cut."""
        return float(self.wnorm.max()), float(self.resid.max())

    @classmethod
    def build(cls, vectors: np.ndarray, norms: np.ndarray) -> Int8Index | None:
        """The index of a matrix's rows (and their norms); None without FBGEMM's kernel or torch's public
        quantization calls, or where the kernel does not keep the bound on these rows."""
        try:
            import torch

            prepack = torch.ops.quantized.linear_prepack
            quantize = torch.quantize_per_channel
            if torch.backends.quantized.engine not in ENGINES:
                return None
        except (ImportError, AttributeError, RuntimeError):
            return None
        n, dim = vectors.shape
        w8 = np.zeros((-(-n // _SEG) * _SEG, dim + 2), dtype=np.int8)
        scales = np.ones(len(w8), dtype=np.float32)
        wnorm = np.empty(n, dtype=np.float32)
        resid = np.empty(n, dtype=np.float32)
        norms = np.asarray(norms, dtype=np.float32)
        safe = np.where(norms > 0, norms, np.float32(np.inf))
        # A float32 sum of squares is within dim·2⁻²⁴ of the truth (relative); its square root half that.
        up = np.float32(1 + 2 * (dim + 16) * _EPS32)
        step = max(1, _CHUNK_VALUES // max(1, dim))
        for s in range(0, n, step):
            e = min(n, s + step)
            u = np.asarray(vectors[s:e], dtype=np.float32) / safe[s:e, None]
            # One absmax scale per row: values to integers in [-127, 127] (rounding is free to choose; r
            # below measures what it gave).
            sigma = np.maximum(u.max(axis=1), -u.min(axis=1)) / np.float32(127)
            q = u / np.where(sigma > 0, sigma, np.float32(1))[:, None]
            np.rint(q, out=q)
            w8[s:e, :dim] = q
            q *= sigma[:, None]  # ŵ, within 2⁻²⁴ of q·σ per value: the 1e-7 below covers it
            scales[s:e] = sigma
            wnorm[s:e] = np.sqrt(np.einsum("ij,ij->i", q, q)) * up
            u -= q
            resid[s:e] = np.sqrt(np.einsum("ij,ij->i", u, u)) * up + np.float32(1e-7)
        for a in (wnorm, resid):
            a.setflags(write=False)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the quantized-tensor constructors are marked deprecated
                # quantize_per_channel rounds (w8·σ)/σ back to w8 exactly (|w8| ≤ 127, so the two float
                # roundings move it by far less than ½); int_repr() below checks it did.
                wq = quantize(torch.from_numpy(w8.astype(np.float32) * scales[:, None]),
                              torch.from_numpy(scales.astype(np.float64)), torch.zeros(len(w8), dtype=torch.long),
                              0, torch.qint8)
                if not np.array_equal(wq.int_repr().numpy(), w8):
                    return None
                index = cls(dim, prepack(wq, None), wnorm, resid)
            return index if index._keeps_bound(w8, scales) else None
        except (RuntimeError, AttributeError):
            return None

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The kernel: approximate scores of every (padded) row for one grid query."""
        import torch

        return np.asarray(torch.ops.quantized.linear_dynamic(torch.from_numpy(x[None]), self.packed, True)
                          .numpy()[0])

    def _keeps_bound(self, w8: np.ndarray, scales: np.ndarray) -> bool:
        """Whether the kernel's error on two seeded queries stays within ``γ·|ŵ|·|x̂| + |y|·2⁻²⁰`` on every row."""
        rng = np.random.default_rng(0)
        q = rng.standard_normal((2, self.dim)).astype(np.float32)
        x = np.stack([grid_query(v / np.float32(np.linalg.norm(v))) for v in q])
        y = np.stack([self._run(v) for v in x], axis=1)
        x64 = x.astype(np.float64)
        xn = np.linalg.norm(x64, axis=1)
        gamma = _gamma(self.dim)
        step = max(1, _CHUNK_VALUES // max(1, w8.shape[1]))
        n = len(self.wnorm)
        for s in range(0, n, step):
            e = min(n, s + step)
            exact = (w8[s:e].astype(np.float64) @ x64.T) * scales[s:e, None]
            allowed = gamma * self.wnorm[s:e, None] * xn[None, :] + np.abs(y[s:e]) * 2.0 ** -20
            if not (np.abs(y[s:e] - exact) <= allowed).all():
                return False
        return True

    def estimate(self, q: np.ndarray) -> Estimate:
        """Approximate scores of every row for one unit query ``q`` (float32, dim), with their error bound."""
        x = grid_query(q)
        qn, xn = _norm_up(q), _norm_up(x)
        return Estimate(self._run(x), qn, xn, _norm_up(q - x[:-2]) + _gamma(self.dim) * xn,
                        2 * (self.dim + 16) * _EPS32 * qn + 1e-6)

    def candidates(self, q: np.ndarray, k: int, n_scan: int, blocked: np.ndarray | None = None,
                   exclude: np.ndarray | None = None) -> list[np.ndarray] | None:
        """Per query, the rows among the first ``n_scan`` that may be among its ``k`` best by exact cosine.

        Args:
            q: unit query vectors (b × dim) float32.
            k: neighbours wanted.
            n_scan: rows searched (the first ones).
            blocked: rows never returned (bool over the first ``n_scan``), or None.
            exclude: per query, row ids never returned, padded with -1 ((b × e) ints), or None.

        Returns:
            Sorted row ids per query; None where so many rows are in doubt that the exact scan is cheaper,
            or where fewer than ``k`` rows can be returned.
        """
        if n_scan == len(self.wnorm):
            wn_max, rs_max = self.maxima
        else:
            wn_max, rs_max = float(self.wnorm[:n_scan].max()), float(self.resid[:n_scan].max())
        limit = int(n_scan * MAX_CANDIDATE_SHARE)
        out = []
        for b in range(q.shape[0]):
            est = self.estimate(q[b])
            y = est.y
            y[n_scan:] = -np.inf
            if blocked is not None:
                y[:n_scan][blocked] = -np.inf
            if exclude is not None:
                ex = exclude[b]
                y[ex[(ex >= 0) & (ex < n_scan)]] = -np.inf
            bound_max = est.qn * rs_max + est.a * wn_max + wn_max * est.xn * 2.0 ** -19 + est.const
            # The k rows of largest y have exact scores ≥ y − bound, so the k-th best exact score is at least
            # the k-th largest y − bound; a row whose y + bound stays below that cannot be among the k best.
            # Rows go in groups (row i in group i mod n/64: a column of ``groups``), and the k-th largest group
            # maximum, a lower bound of the k-th largest y, takes 1/64 of the work of partitioning y.
            groups = y.reshape(_SEG, -1)
            top = groups.max(axis=0)
            kth = float(np.partition(top, top.size - k)[top.size - k]) if k <= top.size else -np.inf
            if not np.isfinite(kth):
                kth = float(np.partition(y, y.size - k)[y.size - k])
                if not np.isfinite(kth):
                    return None
            cut = kth - 2 * bound_max
            hit = np.flatnonzero(top >= cut)
            r, c = np.nonzero(groups[:, hit] >= cut)
            rough = np.sort(r * groups.shape[1] + hit[c])
            # Then each row's own bound, on the few rows left.
            yr = y[rough]
            bound = est.qn * self.resid[rough] + est.a * self.wnorm[rough] + np.abs(yr) * 2.0 ** -20 + est.const
            lower = yr - bound
            floor = float(np.partition(lower, rough.size - k)[rough.size - k])
            doubt = rough[yr + bound >= floor]
            if doubt.size > limit:
                return None
            out.append(doubt)
        return out


__all__ = ["MIN_ROWS", "Estimate", "Int8Index", "grid_query"]
