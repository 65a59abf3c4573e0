"""What the checks share: one scan of every row, a seeded sample of pairs, progress in stages, small helpers.

Rows are read in chunks, so memory stays at a few blocks besides the matrix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from core._status import Status
from core._threads import one_blas_thread
from core.audit.policy import Policy
from core.audit.result import Check
from core.matrix import EmbeddingMatrix
from core.progress import Reporter

#: Projection dimensions of the near-duplicate bound (the sample's top directions).
BOUND_DIMS = 64


class Stage:
    """Maps a stage's own 0..1 onto its slice of the whole audit."""

    def __init__(self, rep: Reporter, lo: float, hi: float, label: str) -> None:
        self.rep, self.lo, self.hi, self.label = rep, lo, hi, label

    def __call__(self, fraction: float) -> None:
        self.rep(self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0), self.label)


CHUNK_VALUES = 1 << 22


def row_chunks(n: int, d: int, values: int = CHUNK_VALUES) -> Iterator[tuple[int, int]]:
    step = max(1, values // max(1, d))
    for s in range(0, n, step):
        yield s, min(n, s + step)


# -- pass 1: one scan of every row ----------------------------------------------------------------------
@dataclass
class Scan:
    norms: np.ndarray        # float64; NaN for rows holding NaN/Inf
    nan_rows: np.ndarray     # bool
    inf_rows: np.ndarray     # bool (Inf and no NaN)
    zero_rows: np.ndarray    # bool
    good: np.ndarray         # bool: finite and not zero
    unit_sum: np.ndarray     # (d,) sum of the good rows divided by their norms
    unit_sq: np.ndarray      # (d,) sum of squares of the same
    raw_sum: np.ndarray      # (d,) sum of the good rows
    hashes: np.ndarray       # uint64 content hash of every row
    dropped: tuple[int, ...] = ()  # dimensions left out of ``norms`` (rogue dimensions that failed)


def without_dims(m: EmbeddingMatrix, scan: Scan, dims: Sequence[int]) -> Scan:
    """The scan with ``dims`` left out of the row norms.

    A dimension that swamps every cosine swamps every norm too, hiding the under-trained rows and the
    norm tail; the rogue-dimension check reports it, and the norm checks look past it.
    """
    cols = np.asarray(sorted(dims), dtype=np.int64)
    part = np.zeros(len(m))
    for s, e in row_chunks(len(m), m.dim):
        c = np.asarray(m.vectors[s:e], dtype=np.float64)[:, cols]
        part[s:e] = np.einsum("ij,ij->i", c, c)
    with np.errstate(invalid="ignore"):
        norms = np.sqrt(np.maximum(scan.norms ** 2 - part, 0.0))
    norms[~np.isfinite(scan.norms)] = np.nan
    good = np.isfinite(norms) & (norms > 0) & scan.good
    return replace(scan, norms=norms, good=good, dropped=tuple(int(c) for c in cols))


def dropped_note(scan: Scan) -> str:
    if not scan.dropped:
        return ""
    return (f" (norms leave out rogue dimension{'s' if len(scan.dropped) > 1 else ''} "
            f"{', '.join(map(str, scan.dropped))}, which swamp{'' if len(scan.dropped) > 1 else 's'} them)")


def scan_rows(m: EmbeddingMatrix, stage: Stage) -> Scan:
    n, d = m.shape
    norms = np.empty(n)
    nan_rows = np.zeros(n, dtype=bool)
    inf_rows = np.zeros(n, dtype=bool)
    hashes = np.zeros(n, dtype=np.uint64)
    unit_sum, unit_sq, raw_sum = np.zeros(d), np.zeros(d), np.zeros(d)
    coef = np.random.default_rng(0x5EED).integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)
    for s, e in row_chunks(n, d):
        stage(s / n)
        c = np.asarray(m.vectors[s:e], dtype=np.float32)
        sq = np.einsum("ij,ij->i", c, c, dtype=np.float64)
        finite = np.isfinite(sq)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            has_nan = np.isnan(c[bad]).any(axis=1)
            nan_rows[s + bad[has_nan]] = True
            inf_rows[s + bad[~has_nan]] = True
            sq[bad] = np.nan
        norm = np.sqrt(sq)
        norms[s:e] = norm
        ok = finite & (sq > 0)
        g = c if ok.all() else c[ok]
        u = g / norm[ok, None].astype(np.float32)
        unit_sum += u.sum(axis=0, dtype=np.float64)
        unit_sq += np.einsum("ij,ij->j", u, u, dtype=np.float64)
        raw_sum += g.sum(axis=0, dtype=np.float64)
        # Content hash for exact duplicates: +0.0 folds -0.0 into 0.0; uint64 sums wrap, which is fine.
        bits = (c + np.float32(0.0)).view(np.uint32).astype(np.uint64)
        bits *= coef
        hashes[s:e] = bits.sum(axis=1)
    zero_rows = np.isfinite(norms) & (norms == 0)
    good = np.isfinite(norms) & (norms > 0)
    stage(1.0)
    return Scan(norms, nan_rows, inf_rows, zero_rows, good, unit_sum, unit_sq, raw_sum, hashes)


def unit_rows(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray) -> np.ndarray:
    x = np.asarray(m.vectors[rows], dtype=np.float32)
    return x / norms[rows, None].astype(np.float32)


def top_directions(y: np.ndarray, k: int, rng: np.random.Generator, iters: int = 6) -> np.ndarray:
    """Top-``k`` right singular vectors of ``y`` (k × d, orthonormal rows) by subspace iteration."""
    d = y.shape[1]
    k = min(k, d, y.shape[0])
    q = rng.standard_normal((d, min(d, k + 8))).astype(y.dtype)
    for _ in range(iters):
        q = y.T @ (y @ q)
        with one_blas_thread():
            q, _ = np.linalg.qr(q)
    b = y @ q
    with one_blas_thread():
        _, _, vt = np.linalg.svd(b, full_matrices=False)
    out = (vt[:k] @ q.T).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out)


# -- helpers for statuses -------------------------------------------------------------------------------
def status_above(value: float, warn: float, fail: float) -> Status:
    return "fail" if value > fail else "warn" if value > warn else "pass"


def na(check: str, policy: Policy, reason: str, **data: Any) -> Check:
    return Check(check, "n/a", None, policy.section(check), reason, data=dict(data))


def rows_of_category(ctx: Any, check: str, category: str, premise: str) -> np.ndarray | Check:
    """Rows the tokenizer puts in ``category`` (the under-trained check's per-row categories), or the n/a
    result of ``check`` saying why there are none to look at (``premise``: what the check needs them for)."""
    under = ctx.results.get("undertrained")
    cats = under.data.get("categories") if under is not None else None
    if not ctx.m.has_tokenizer or cats is None:
        why = "no model tokenizer" if not ctx.m.has_tokenizer else "the under-trained check is off or could not run"
        return na(check, ctx.policy, f"{why}: {premise}")
    return np.flatnonzero(cats == category)


def robust_z(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    if mad <= 0:
        return np.zeros_like(x), med, 0.0
    return (x - med) / mad, med, mad


def histogram(values: np.ndarray, bins: int = 60, lo: float | None = None,
               hi: float | None = None) -> pd.DataFrame:
    v = values[np.isfinite(values)]
    if not v.size:
        return pd.DataFrame({"start": [], "end": [], "rows": []})
    rng = (lo if lo is not None else float(v.min()), hi if hi is not None else float(v.max()))
    if rng[1] <= rng[0]:
        rng = (rng[0] - 0.5, rng[0] + 0.5)
    counts, edges = np.histogram(v, bins=bins, range=rng)
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "rows": counts.astype(int)})


def tokens_of(m: EmbeddingMatrix, ids: Sequence[int] | np.ndarray) -> tuple[str, ...]:
    keys = m.index_to_key
    return tuple(keys[int(i)] for i in ids)

@dataclass
class Sample:
    rows: np.ndarray
    cos_mean: float
    cos_hist: pd.DataFrame
    cos_quantiles: tuple[float, float, float]
    cos2_contrib: np.ndarray   # (d,) per-dimension contribution to E[cos^2] over distinct sample pairs
    directions: np.ndarray | None


def sample_pairs(m: EmbeddingMatrix, scan: Scan, policy: Policy, rng: np.random.Generator, stage: Stage) -> Sample:
    good = np.flatnonzero(scan.good)
    size = min(good.size, int(policy.num("anisotropy", "sample")))
    rows = good if good.size <= size else np.sort(rng.choice(good, size, replace=False))
    y = unit_rows(m, rows, scan.norms) if rows.size else np.zeros((0, m.dim), np.float32)
    stage(0.2)
    s = rows.size
    if s >= 2:
        k = y @ y.T
        off = k.sum(dtype=np.float64) - float(np.trace(k, dtype=np.float64))
        cos_mean = off / (s * (s - 1))
        counts, edges = np.histogram(k, bins=80, range=(-1.0, 1.0))
        diag, _ = np.histogram(np.diag(k), bins=80, range=(-1.0, 1.0))
        hist = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "pairs": ((counts - diag) // 2).astype(int)})
        a = rng.integers(0, s, 200_000)
        b = rng.integers(0, s, 200_000)
        vals = k[a[a != b], b[a != b]]
        qs = np.quantile(vals, [0.05, 0.5, 0.95]) if vals.size else np.zeros(3)
        q = (float(qs[0]), float(qs[1]), float(qs[2]))
        ky = k @ y
        contrib = (np.einsum("ij,ij->j", ky, y, dtype=np.float64) - np.einsum("ij,ij->j", y, y, dtype=np.float64))
        contrib /= s * (s - 1)
        del k, ky
    else:
        cos_mean, hist, q = float("nan"), pd.DataFrame({"start": [], "end": [], "pairs": []}), (0.0, 0.0, 0.0)
        contrib = np.zeros(m.dim)
    stage(0.7)
    directions = None
    if m.dim > 2 * BOUND_DIMS and s >= BOUND_DIMS:
        directions = top_directions(y, BOUND_DIMS, rng)
    stage(1.0)
    return Sample(rows, float(cos_mean), hist, q, contrib, directions)


