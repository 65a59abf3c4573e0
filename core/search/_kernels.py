"""Compiled loops (numba) for the CPU search: a running top ``k`` kept in one pass over the scores.

numpy needs several passes over a block of scores to keep its best ``k`` (a partition, a gather, a merge)
and several more to combine shared basis products into analogy scores (a gather and an add per term).
These loops do each in one pass: a score is compared with the ``k``-th best so far and, rarely, inserted.
The arithmetic is numpy's, in the same order and in float32 (no fast-math), so the scores are the ones
numpy would give, bit for bit. Ties keep the lower row id: rows are visited in increasing order and only a
strictly better score displaces a kept one.

The functions release the GIL, so the search runs them on several threads over disjoint queries.
Compiled once per machine (numba's cache, next to this file); the first use in a fresh install compiles.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Above this ``k`` the sorted insertion costs more than numpy's partition: callers use numpy instead.
MAX_K = 64

MODE_SUM = 0
MODE_EUCLIDEAN = 1
MODE_COSMUL = 2


@njit(nogil=True, cache=True)
def _insert(best_s: np.ndarray, best_i: np.ndarray, q: int, v: float, i: int) -> float:  # pragma: no cover
    """Put (v, i) into query q's best list (sorted, best first); return the new k-th best score."""
    p = best_s.shape[1] - 1
    while p > 0 and best_s[q, p - 1] < v:
        best_s[q, p] = best_s[q, p - 1]
        best_i[q, p] = best_i[q, p - 1]
        p -= 1
    best_s[q, p] = v
    best_i[q, p] = i
    return best_s[q, best_s.shape[1] - 1]


@njit(nogil=True, cache=True)
def _keep_best(row: np.ndarray, q: int, c0: int, blocked: np.ndarray, exclude: np.ndarray,
               best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """Merge one query's scores for columns c0.. into its best list (NaN and -inf never enter)."""
    n = row.shape[0]
    for e in range(exclude.shape[1]):
        x = exclude[q, e] - c0
        if 0 <= x < n:
            row[x] = -np.inf
    worst = best_s[q, best_s.shape[1] - 1]
    has_blocked = blocked.shape[0] > 0
    for c in range(n):
        v = row[c]
        if v > worst and not (has_blocked and blocked[c]):
            worst = _insert(best_s, best_i, q, v, c0 + c)


@njit(nogil=True, cache=True)
def keep_best(s: np.ndarray, q0: int, c0: int, blocked: np.ndarray, exclude: np.ndarray,
              best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """Merge a block of scores (rows = queries q0.., columns = rows c0.. of the matrix) into the best lists.

    Args:
        s: (b × n) float32 scores; excluded entries are overwritten with -inf.
        blocked: bool per column (rows never returned), or an empty array.
        exclude: (n_queries × e) row ids never returned per query, -1 padded (e may be 0).
        best_s, best_i: (n_queries × k) running best, sorted best first; updated in place.
    """
    for r in range(s.shape[0]):
        _keep_best(s[r], q0 + r, c0, blocked, exclude, best_s, best_i)


@njit(nogil=True, cache=True)
def combine_keep_best(f: np.ndarray, terms: np.ndarray, weights: np.ndarray, mode: int, n_pos: int,
                      sq: np.ndarray, q0: int, q1: int, c0: int, blocked: np.ndarray, exclude: np.ndarray,
                      best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """Scores of queries q0..q1 from shared basis products, merged into their best lists as they are made.

    Args:
        f: (n_basis × n) float32 products of the basis with columns c0.. (already divided by the norms for
            cosine; (1 + cos) / 2 for 3CosMul).
        terms, weights: (n_queries × t) basis rows and their weights (weights unused for 3CosMul).
        mode: MODE_SUM (Σ w·f), MODE_EUCLIDEAN (2·Σ w·f − sq) or MODE_COSMUL (Π pos ÷ (Π neg + 1e-6)).
        n_pos: 3CosMul's positive terms (the first ``n_pos`` of each row of ``terms``).
        sq: squared row norms of columns c0.. (euclidean), or an empty array.
        blocked, exclude, best_s, best_i: as in :func:`keep_best`.
    """
    n = f.shape[1]
    t = terms.shape[1]
    row = np.empty(n, dtype=np.float32)
    den = np.empty(n, dtype=np.float32)
    eps = np.float32(1e-6)
    one_eps = np.float32(1.0 + 1e-6)
    two = np.float32(2.0)
    for q in range(q0, q1):
        a = terms[q, 0]
        if mode == MODE_COSMUL:
            for c in range(n):
                row[c] = f[a, c]
            for j in range(1, n_pos):
                b = terms[q, j]
                for c in range(n):
                    row[c] *= f[b, c]
            if n_pos == t:
                for c in range(n):
                    row[c] /= one_eps
            else:
                b = terms[q, n_pos]
                for c in range(n):
                    den[c] = f[b, c]
                for j in range(n_pos + 1, t):
                    b = terms[q, j]
                    for c in range(n):
                        den[c] *= f[b, c]
                for c in range(n):
                    row[c] /= den[c] + eps
        else:
            w = weights[q, 0]
            for c in range(n):
                row[c] = f[a, c] * w
            for j in range(1, t):
                b = terms[q, j]
                w = weights[q, j]
                for c in range(n):
                    row[c] += f[b, c] * w
            if mode == MODE_EUCLIDEAN:
                for c in range(n):
                    row[c] = row[c] * two - sq[c]
        _keep_best(row, q, c0, blocked, exclude, best_s, best_i)
