"""Compiled loops (numba) for the CPU search: a running top ``k`` kept in one pass over the scores.

numpy needs several passes over a block of scores to keep its best ``k`` (a partition, a gather, a merge)
and several more to combine shared basis products into analogy scores (a gather and an add per term).
These loops do each in one pass: a score is compared with the ``k``-th best so far and, rarely, inserted.
Analogies (three terms) are scored and tested a run of 64 rows at a time in one vectorised loop, and only a
run that holds a better score is looked at row by row; questions on one word pair share its difference
(3CosAdd's (b − a) + c needs no products at all). The runs
index with unsigned integers and test with a boolean "or": with a signed index the compiler must allow for a
negative one (numba wraps those) and vectorises far less (+38% on an analogy set's loop, measured).
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

#: Scores tested together against a query's k-th best before any is looked at alone.
_RUN = 64

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
    """Merge one query's scores for columns c0.. into its best list (NaN and -inf never enter).

    Each run of ``_RUN`` scores is first tested as a whole against the k-th best (a loop of fixed length,
    which the compiler turns into vector compares); only a run holding a better score is walked one by one.
    """
    n = row.shape[0]
    for e in range(exclude.shape[1]):
        x = exclude[q, e] - c0
        if 0 <= x < n:
            row[x] = -np.inf
    worst = best_s[q, best_s.shape[1] - 1]
    has_blocked = blocked.shape[0] > 0
    full = n - n % _RUN
    for r0 in range(0, n, _RUN):
        if r0 < full:
            hit = False
            u = np.uint64(r0)
            for c in range(_RUN):
                hit = hit | (row[u + np.uint64(c)] > worst)
            if not hit:
                continue
        for c in range(r0, min(n, r0 + _RUN)):
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
    if terms.shape[1] == 3 and mode == MODE_SUM:
        _sum3(f, terms, weights, q0, q1, c0, blocked, exclude, best_s, best_i)
        return
    if terms.shape[1] == 3 and mode == MODE_COSMUL and n_pos == 2:
        _cosmul3(f, terms, q0, q1, c0, blocked, exclude, best_s, best_i)
        return
    row = np.empty(f.shape[1], dtype=np.float32)
    den = np.empty(f.shape[1], dtype=np.float32)
    for q in range(q0, q1):
        _combine(f, terms, weights, mode, n_pos, sq, q, row, den)
        _keep_best(row, q, c0, blocked, exclude, best_s, best_i)


@njit(nogil=True, cache=True)
def _take(buf: np.ndarray, m: int, r0: int, q: int, c0: int, blocked: np.ndarray, exclude: np.ndarray,
          best_s: np.ndarray, best_i: np.ndarray) -> float:  # pragma: no cover
    """Insert the better of scores ``buf[:m]`` (columns r0.. of a chunk starting at row c0) into query q's best
    list, passing over blocked columns and q's excluded rows; return the new k-th best score."""
    worst = best_s[q, best_s.shape[1] - 1]
    has_blocked = blocked.shape[0] > 0
    for c in range(m):
        v = buf[c]
        if v > worst and not (has_blocked and blocked[r0 + c]):
            row_id = c0 + r0 + c
            excluded = False
            for e in range(exclude.shape[1]):
                if exclude[q, e] == row_id:
                    excluded = True
            if not excluded:
                worst = _insert(best_s, best_i, q, v, row_id)
    return worst


@njit(nogil=True, cache=True)
def _sum3(f: np.ndarray, terms: np.ndarray, weights: np.ndarray, q0: int, q1: int, c0: int, blocked: np.ndarray,
          exclude: np.ndarray, best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """:func:`combine_keep_best` for three weighted terms (3CosAdd), in one pass per run of ``_RUN`` columns.

    Each score is ``(f[a]·wa + f[b]·wb) + f[c]·wc`` in float32, as the term-by-term passes compute it.
    Consecutive queries with the same first two terms (an analogy set's questions on one word pair) share
    that first sum, made once per chunk; each query then reads only its third term (the loop is bound by
    what it reads: 15% faster on an analogy set). In that loop a third weight of ±1 needs no product (the
    result is the same).
    """
    n = f.shape[1]
    pair = np.empty(n, dtype=np.float32)
    buf = np.empty(_RUN, dtype=np.float32)
    q = q0
    while q < q1:
        a, b = terms[q, 0], terms[q, 1]
        wa, wb = weights[q, 0], weights[q, 1]
        g = q + 1
        while g < q1 and terms[g, 0] == a and terms[g, 1] == b and weights[g, 0] == wa and weights[g, 1] == wb:
            g += 1
        fa, fb = f[a], f[b]
        for c in range(n):
            pair[c] = fa[c] * wa + fb[c] * wb
        for p in range(q, g):
            _pair_plus(pair, f[terms[p, 2]], weights[p, 2], buf, p, c0, blocked, exclude, best_s, best_i)
        q = g


@njit(nogil=True, cache=True)
def _pair_plus(pair: np.ndarray, fc: np.ndarray, wc: float, buf: np.ndarray, q: int, c0: int, blocked: np.ndarray,
               exclude: np.ndarray, best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """Query q's scores ``pair + fc·wc`` merged into its best list, a run of ``_RUN`` columns at a time.

    A run is only tested against the k-th best; its scores are computed again (into ``buf``) for the rare
    run that holds a better one.
    """
    n = pair.shape[0]
    full = n - n % _RUN
    worst = best_s[q, best_s.shape[1] - 1]
    plus = wc == 1.0
    minus = wc == -1.0
    for r0 in range(0, full, _RUN):
        hit = False
        u = np.uint64(r0)
        if plus:
            for c in range(_RUN):
                i = u + np.uint64(c)
                hit = hit | (pair[i] + fc[i] > worst)
        elif minus:
            for c in range(_RUN):
                i = u + np.uint64(c)
                hit = hit | (pair[i] - fc[i] > worst)
        else:
            for c in range(_RUN):
                i = u + np.uint64(c)
                hit = hit | (pair[i] + fc[i] * wc > worst)
        if hit:
            for c in range(_RUN):
                buf[c] = pair[r0 + c] + fc[r0 + c] * wc
            worst = _take(buf, _RUN, r0, q, c0, blocked, exclude, best_s, best_i)
    for c in range(n - full):
        buf[c] = pair[full + c] + fc[full + c] * wc
    _take(buf, n - full, full, q, c0, blocked, exclude, best_s, best_i)


@njit(nogil=True, cache=True)
def _cosmul3(f: np.ndarray, terms: np.ndarray, q0: int, q1: int, c0: int, blocked: np.ndarray,
             exclude: np.ndarray, best_s: np.ndarray, best_i: np.ndarray) -> None:  # pragma: no cover
    """:func:`combine_keep_best` for 3CosMul with two positive terms and one negative, in one pass per run.

    Each score is ``(f[a]·f[b]) / (f[c] + 1e-6)`` in float32, as the row-by-row passes compute it.
    """
    n = f.shape[1]
    full = n - n % _RUN
    eps = np.float32(1e-6)
    buf = np.empty(_RUN, dtype=np.float32)
    for q in range(q0, q1):
        fa, fb, fc = f[terms[q, 0]], f[terms[q, 1]], f[terms[q, 2]]
        worst = best_s[q, best_s.shape[1] - 1]
        for r0 in range(0, full, _RUN):
            hit = False
            u = np.uint64(r0)
            for c in range(_RUN):
                i = u + np.uint64(c)
                v = fa[i] * fb[i]
                v = v / (fc[i] + eps)
                buf[c] = v
                hit = hit | (v > worst)
            if hit:
                worst = _take(buf, _RUN, r0, q, c0, blocked, exclude, best_s, best_i)
        for c in range(n - full):
            v = fa[full + c] * fb[full + c]
            buf[c] = v / (fc[full + c] + eps)
        _take(buf, n - full, full, q, c0, blocked, exclude, best_s, best_i)


@njit(nogil=True, cache=True)
def _combine(f: np.ndarray, terms: np.ndarray, weights: np.ndarray, mode: int, n_pos: int, sq: np.ndarray,
             q: int, row: np.ndarray, den: np.ndarray) -> None:  # pragma: no cover
    """Query q's scores for every column of ``f`` into ``row``, term by term (see :func:`combine_keep_best`)."""
    n = row.shape[0]
    t = terms.shape[1]
    eps = np.float32(1e-6)
    one_eps = np.float32(1.0 + 1e-6)
    two = np.float32(2.0)
    fa = f[terms[q, 0]]
    if mode == MODE_COSMUL:
        for c in range(n):
            row[c] = fa[c]
        for j in range(1, n_pos):
            fb = f[terms[q, j]]
            for c in range(n):
                row[c] *= fb[c]
        if n_pos == t:
            for c in range(n):
                row[c] /= one_eps
        else:
            fb = f[terms[q, n_pos]]
            for c in range(n):
                den[c] = fb[c]
            for j in range(n_pos + 1, t):
                fb = f[terms[q, j]]
                for c in range(n):
                    den[c] *= fb[c]
            for c in range(n):
                row[c] /= den[c] + eps
    else:
        w = weights[q, 0]
        for c in range(n):
            row[c] = fa[c] * w
        for j in range(1, t):
            fb = f[terms[q, j]]
            w = weights[q, j]
            for c in range(n):
                row[c] += fb[c] * w
        if mode == MODE_EUCLIDEAN:
            for c in range(n):
                row[c] = row[c] * two - sq[c]

