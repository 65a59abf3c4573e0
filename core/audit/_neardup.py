"""Exact and near-duplicate rows, grouped in time that grows with the rows, not with the square of a cluster.

Near duplicates are the connected components of the graph "cosine above the threshold", found exactly:

* Window. Two unit rows with cosine above t are closer than r = sqrt(2 - 2t), so their projections on the
  sample's top direction differ by less than r: sorted by that projection, a row is compared only with the
  rows after it within r.
* Bound. For an orthonormal projection P with residual norms ρ, cos(u, v) = Pu·Pv + (rest) ≤ Pu·Pv + ρ_u ρ_v:
  :data:`BOUND_DIRECTIONS` products per pair rule out most pairs of unrelated rows; on high-dimensional rows
  with no structure (a random matrix) about a fifth pass it, and a second bound on :data:`FINE_DIRECTIONS`
  directions rules those out before any exact cosine (its residual product is far below the threshold).
* Union-find. A pair that passes the bound is skipped without its exact cosine when its rows are already in
  one group (it cannot change the groups); otherwise its exact float64 cosine decides. A cluster of c
  near-identical rows costs about c exact cosines, and no list of pairs is ever built.

The loops are compiled (numba, releasing the GIL) and run on every core: each thread keeps its own union-find
over its share of the rows and records only the edges that joined two of its groups (fewer than the rows), and
the edges of all threads are joined at the end; a pair one thread skipped lies inside a group its own edges
already join.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from core.audit._shared import Scan, row_chunks, top_directions, unit_rows
from core.matrix import EmbeddingMatrix

#: Directions of the bound. Fewer make each pair cheaper and the bound looser; 8 rule out practically every
#: pair of unrelated rows at cosine 0.999, and a pair that passes costs one exact cosine at most.
BOUND_DIRECTIONS = 8
#: Directions of the second bound, for the pairs the first one lets through.
FINE_DIRECTIONS = 64
#: Rows compared together against their window (their coordinates stay in the first-level cache).
_TILE = 256
#: Progress reports over the sweep.
_ROUNDS = 40


@njit(nogil=True, cache=True)
def _find(parent: np.ndarray, a: int) -> int:  # pragma: no cover - compiled
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression: later finds are one step
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@njit(nogil=True, cache=True)
def _cosine(x: np.ndarray, ra: int, rb: int, norms: np.ndarray) -> float:  # pragma: no cover - compiled
    """The exact cosine of two rows in float64, summed in order (no fast-math here)."""
    dot = 0.0
    for k in range(x.shape[1]):
        dot += np.float64(x[ra, k]) * np.float64(x[rb, k])
    return dot / (norms[ra] * norms[rb])


@njit(nogil=True, cache=True)
def _sweep(t: int, z: np.ndarray, z0: np.ndarray, fine: np.ndarray, reach: float, t_lo: int, t_hi: int,
           rows: np.ndarray, x: np.ndarray, norms: np.ndarray, cut: float, threshold: float, parents: np.ndarray,
           ea: np.ndarray, eb: np.ndarray, ecos: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover
    """Thread ``t``'s share of tiles ``t_lo`` … ``t_hi`` of the rows (sorted by ``z0``) against their windows.

    ``z`` holds the bound coordinates of each row (the projections, then the residual), ``fine`` those of the
    second bound. Thread ``t`` of ``T``
    takes every ``T``-th tile, keeps its union-find in ``parents[t]`` (over sorted positions) and appends the
    edges that joined two of its groups to ``ea[t]``, ``eb[t]``, ``ecos[t]`` (``counts[t]`` so far); threads
    write nothing in common.
    """
    threads = parents.shape[0]
    n, w = z.shape
    wf = fine.shape[1]
    cut32 = np.float32(cut)
    parent = parents[t]
    acc = np.empty(_TILE, dtype=np.float32)
    zat = np.empty((w, _TILE), dtype=np.float32)
    cnt = counts[t]
    for ti in range(t_lo + (t - t_lo) % threads, t_hi, threads):
        a0 = ti * _TILE
        a1 = min(n, a0 + _TILE)
        na = a1 - a0
        for k in range(w):
            for i in range(na):
                zat[k, i] = z[a0 + i, k]
        hi = np.searchsorted(z0, z0[a1 - 1] + reach, side="right")
        for b in range(a0 + 1, hi):
            # the tile's bounds against row b: a vector loop over the tile
            for i in range(na):
                acc[i] = 0.0
            for k in range(w):
                zb = z[b, k]
                for i in range(na):
                    acc[i] += zat[k, i] * zb
            for i in range(min(na, b - a0)):
                if acc[i] < cut32:
                    continue
                a = a0 + i
                bound = np.float32(0.0)
                for k in range(wf):
                    bound += fine[a, k] * fine[b, k]
                if bound < cut32:
                    continue
                fa = _find(parent, a)
                fb = _find(parent, b)
                if fa == fb:
                    continue
                cos = _cosine(x, rows[a], rows[b], norms)
                if cos > threshold:
                    if fa < fb:
                        parent[fb] = fa
                    else:
                        parent[fa] = fb
                    ea[t, cnt] = a
                    eb[t, cnt] = b
                    ecos[t, cnt] = cos
                    cnt += 1
    counts[t] = cnt


@njit(nogil=True, cache=True)
def _join(parent: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(a.size):
        fa = _find(parent, a[i])
        fb = _find(parent, b[i])
        if fa < fb:
            parent[fb] = fa
        elif fb < fa:
            parent[fa] = fb


@njit(nogil=True, cache=True)
def _roots(parent: np.ndarray, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        out[i] = _find(parent, rows[i])
    return out


def _own_directions(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray, k: int) -> np.ndarray:
    """``k`` orthonormal directions for a matrix the sample gave none for: its own axes when it has no more
    than ``k`` dimensions (the bound is then exact), else the top directions of a seeded sample of rows (a
    generator of its own, so the audit's draws stay as they are)."""
    d = m.dim
    if d <= k:
        return np.eye(k, d, dtype=np.float32)
    rng = np.random.default_rng(0)
    pick = rows if rows.size <= 2000 else np.sort(rng.choice(rows, 2000, replace=False))
    return top_directions(unit_rows(m, pick, norms), k, rng)


def _matrix_rows(m: EmbeddingMatrix) -> np.ndarray:
    x = np.asarray(m.vectors)
    return x if x.dtype in (np.float32, np.float64) else np.asarray(x, dtype=np.float32)


def near_groups(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray, threshold: float,
                directions: np.ndarray | None, stage: Callable[[float], None]) -> tuple[list[np.ndarray], np.ndarray]:
    """Groups of ``rows`` (indices into the matrix) joined by cosines above ``threshold``, found exactly.

    Args:
        directions: orthonormal directions (k × dim), the first :data:`BOUND_DIRECTIONS` of which make the
            window and the bound; None to choose them here.

    Returns:
        the groups (sorted row arrays, sorted by first row), and per row the lowest cosine among the edges
        that joined it (1.0 for rows in no group).
    """
    n, d = rows.size, m.dim
    k = BOUND_DIRECTIONS
    directions_all = directions
    if directions is None or directions.shape[0] < k:
        directions = _own_directions(m, rows, norms, k)
    directions = np.ascontiguousarray(directions[:k], dtype=np.float32)
    if directions.shape[0] < k:  # fewer rows than directions: zero ones add nothing to the bound
        directions = np.vstack([directions, np.zeros((k - directions.shape[0], d), dtype=np.float32)])
    kf = min(FINE_DIRECTIONS, d)
    fine_dirs = directions_all if (directions_all is not None and directions_all.shape[0] >= kf) else \
        _own_directions(m, rows, norms, kf)
    fine_dirs = np.ascontiguousarray(fine_dirs[:kf], dtype=np.float32)
    z = np.empty((n, k + 1), dtype=np.float32)
    fine = np.empty((n, fine_dirs.shape[0] + 1), dtype=np.float32)
    for s, e in row_chunks(n, d):
        u = unit_rows(m, rows[s:e], norms)
        p = u @ directions.T
        z[s:e, :k] = p
        z[s:e, k] = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", p, p)))
        pf = u @ fine_dirs.T
        fine[s:e, :-1] = pf
        fine[s:e, -1] = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", pf, pf)))
    cut = float(np.float32(threshold - 1e-4))  # float32 rounding of the bound; survivors are checked exactly
    reach = math.sqrt(2.0 * max(0.0, 1.0 - threshold)) + 1e-4
    order = np.argsort(z[:, 0], kind="stable")
    z = np.ascontiguousarray(z[order])
    fine = np.ascontiguousarray(fine[order])
    z0 = np.ascontiguousarray(z[:, 0])
    rows = np.ascontiguousarray(rows[order], dtype=np.int64)
    threads = max(1, min(os.cpu_count() or 1, 16, -(-n // (64 * _TILE))))
    parents = np.tile(np.arange(n, dtype=np.int64), (threads, 1))
    ea = np.empty((threads, max(1, n - 1)), dtype=np.int64)
    eb = np.empty_like(ea)
    ecos = np.empty(ea.shape)
    counts = np.zeros(threads, dtype=np.int64)
    x = _matrix_rows(m)
    norms64 = np.ascontiguousarray(norms, dtype=np.float64)
    tiles = -(-n // _TILE)
    step = max(threads, -(-tiles // _ROUNDS))
    # The compiled loop releases the GIL: one thread per core, each on its own share (a pool per search, so
    # that two audits in one process never wait on each other's work).
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="embedscope-audit") as pool:
        for t0 in range(0, tiles, step):
            stage(t0 / tiles)
            t1 = min(tiles, t0 + step)
            for fut in [pool.submit(_sweep, t, z, z0, fine, reach, t0, t1, rows, x, norms64, cut, float(threshold),
                                    parents, ea, eb, ecos, counts) for t in range(threads)]:
                fut.result()
    stage(1.0)
    a = np.concatenate([rows[ea[t, :counts[t]]] for t in range(threads)])
    b = np.concatenate([rows[eb[t, :counts[t]]] for t in range(threads)])
    cos = np.concatenate([ecos[t, :counts[t]] for t in range(threads)])
    low = np.ones(len(m))
    if not a.size:
        return [], low
    np.minimum.at(low, a, cos)
    np.minimum.at(low, b, cos)
    parent = np.arange(len(m), dtype=np.int64)
    _join(parent, a, b)
    joined = np.unique(np.concatenate([a, b]))
    roots = _roots(parent, joined)
    by_root = np.lexsort((joined, roots))
    joined, roots = joined[by_root], roots[by_root]
    groups = [g for g in np.split(joined, np.flatnonzero(roots[1:] != roots[:-1]) + 1) if g.size > 1]
    groups.sort(key=lambda g: int(g[0]))
    return groups, low


def exact_groups(m: EmbeddingMatrix, scan: Scan) -> list[list[int]]:
    """Groups of rows with exactly equal content (-0.0 equal to 0.0), by content hash, then by bytes."""
    idx = np.flatnonzero(scan.good)
    if idx.size < 2:
        return []
    h = scan.hashes[idx]
    order = np.argsort(h, kind="stable")
    hs = h[order]
    starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
    sizes = np.diff(np.r_[starts, hs.size])
    groups: list[list[int]] = []
    for st, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        rows = np.sort(idx[order[st:st + size]])
        vecs = np.asarray(m.vectors[rows]) + 0  # +0 folds -0.0 into 0.0 before comparing bytes
        if (vecs == vecs[0]).all():  # the usual case: one group, no per-row work
            groups.append([int(r) for r in rows])
            continue
        by_content: dict[bytes, list[int]] = {}
        for r, v in zip(rows, vecs, strict=True):
            by_content.setdefault(v.tobytes(), []).append(int(r))
        groups.extend(g for g in by_content.values() if len(g) > 1)
    return sorted(groups)

