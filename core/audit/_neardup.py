"""Exact and near-duplicate rows, grouped in time that grows with the rows, not with the square of a cluster.

Near duplicates are the connected components of the graph "cosine above the threshold". The search is exact:
for unit rows u, v and an orthonormal projection P with residual norms r, cos(u, v) = Pu·Pv + (rest) ≤
Pu·Pv + r_u r_v, so one small matrix product per block of rows bounds every pair and only pairs whose bound
reaches the threshold can be edges. Those pairs go through a compiled union-find: a pair whose rows are
already in one group is skipped without computing its cosine (it cannot change the groups), so a cluster of
c near-identical rows costs about c exact cosines instead of c²/2, and no list of pairs is ever built.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from core.audit._shared import Scan, row_chunks, unit_rows
from core.matrix import EmbeddingMatrix

#: Rows per block of the pairwise pass (a 4096² float32 block is 64 MiB).
BLOCK_ROWS = 4096


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
def _join_block(bound: np.ndarray, cut: float, same: bool, ri: np.ndarray, rj: np.ndarray, xi: np.ndarray,
                xj: np.ndarray, norms: np.ndarray, threshold: float, parent: np.ndarray, low: np.ndarray,
                touched: np.ndarray) -> int:  # pragma: no cover - compiled
    """Join the pairs of one block pair whose bound reaches ``cut`` and whose exact cosine passes ``threshold``.

    ``low`` keeps each row's lowest exact cosine among the edges that joined it; returns the cosines computed.
    """
    computed = 0
    d = xi.shape[1]
    for a in range(bound.shape[0]):
        start = a + 1 if same else 0
        ra = ri[a]
        for b in range(start, bound.shape[1]):
            if bound[a, b] < cut:
                continue
            rb = rj[b]
            fa = _find(parent, ra)
            fb = _find(parent, rb)
            if fa == fb:
                continue
            dot = 0.0
            for k in range(d):
                dot += np.float64(xi[a, k]) * np.float64(xj[b, k])
            computed += 1
            cos = dot / (norms[ra] * norms[rb])
            if cos > threshold:
                if fa < fb:
                    parent[fb] = fa
                else:
                    parent[fa] = fb
                low[ra] = min(low[ra], cos)
                low[rb] = min(low[rb], cos)
                touched[ra] = True
                touched[rb] = True
    return computed


@njit(nogil=True, cache=True)
def _roots(parent: np.ndarray, rows: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(rows.size, dtype=np.int64)
    for i in range(rows.size):
        out[i] = _find(parent, rows[i])
    return out


def _exact_rows(m: EmbeddingMatrix, rows: np.ndarray) -> np.ndarray:
    x = np.asarray(m.vectors[rows])
    return np.ascontiguousarray(x, dtype=np.float64 if x.dtype == np.float64 else np.float32)


def near_groups(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray, threshold: float,
                directions: np.ndarray | None, stage: Callable[[float], None]) -> tuple[list[np.ndarray], np.ndarray]:
    """Groups of ``rows`` (indices into the matrix) joined by cosines above ``threshold``, found exactly.

    Returns:
        the groups (sorted row arrays, sorted by first row), and per row the lowest cosine among the edges
        that joined it (1.0 for rows in no group).
    """
    n, d = rows.size, m.dim
    exact = directions is None
    width = d if exact else directions.shape[0] + 1  # type: ignore[union-attr]
    z = np.empty((n, width), dtype=np.float32)
    for s, e in row_chunks(n, d):
        u = unit_rows(m, rows[s:e], norms)
        if exact:
            z[s:e] = u
        else:
            p = u @ directions.T  # type: ignore[union-attr]
            z[s:e, :-1] = p
            z[s:e, -1] = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", p, p)))
    slack = 1e-4 if not exact else 1e-5  # float32 rounding of the bound; every survivor is re-checked exactly
    cut = float(np.float32(threshold - slack))
    # Sorted by the first coordinate, a block pair whose ranges are farther apart than the largest distance
    # between two unit rows above the threshold holds no pair: |u_0 - v_0| <= |u - v| = sqrt(2 - 2 cos).
    order = np.argsort(z[:, 0], kind="stable")
    z, rows = z[order], np.ascontiguousarray(rows[order], dtype=np.int64)
    reach = math.sqrt(2.0 * max(0.0, 1.0 - threshold)) + 1e-4
    parent = np.arange(len(m), dtype=np.int64)
    low = np.ones(len(m))
    touched = np.zeros(len(m), dtype=bool)
    norms64 = np.ascontiguousarray(norms, dtype=np.float64)
    blocks = list(range(0, n, BLOCK_ROWS))
    total = len(blocks) * (len(blocks) + 1) // 2
    done = 0
    buf = np.empty((BLOCK_ROWS, BLOCK_ROWS), dtype=np.float32)
    for bi in blocks:
        zi = z[bi:bi + BLOCK_ROWS]
        xi: np.ndarray | None = None
        for bj in blocks:
            if bj < bi:
                continue
            done += 1
            stage(done / total)
            if z[bj, 0] - z[min(bi + BLOCK_ROWS, n) - 1, 0] > reach:
                break
            zj = z[bj:bj + BLOCK_ROWS]
            out = buf[:zi.shape[0], :zj.shape[0]]
            np.matmul(zi, zj.T, out=out)
            if not (out.max() >= cut):
                continue
            if xi is None:  # the rows themselves, read only for blocks that hold a candidate
                xi = _exact_rows(m, rows[bi:bi + BLOCK_ROWS])
            xj = xi if bj == bi else _exact_rows(m, rows[bj:bj + BLOCK_ROWS])
            _join_block(out, cut, bi == bj, rows[bi:bi + BLOCK_ROWS], rows[bj:bj + BLOCK_ROWS], xi, xj, norms64,
                        float(threshold), parent, low, touched)
    joined = np.flatnonzero(touched)
    roots = _roots(parent, joined)
    order = np.lexsort((joined, roots))
    joined, roots = joined[order], roots[order]
    starts = np.flatnonzero(np.r_[True, roots[1:] != roots[:-1]]) if joined.size else np.zeros(0, np.int64)
    groups = [g for g in np.split(joined, starts[1:]) if g.size > 1] if joined.size else []
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

