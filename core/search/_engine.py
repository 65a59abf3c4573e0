"""The search engine: one scan that answers every neighbour search, on numpy or torch.

:func:`scan` finds the top ``k`` rows for every output of a :class:`Plan`: plain query vectors (one
product per block of queries and chunk of the vocabulary) or weighted sums / 3CosMul ratios of a small
shared basis (one product of the basis per chunk, combined per query). Each chunk's top ``k`` is kept by a
partial sort and merged into a running best, so memory stays bounded on 128k-row matrices. Batches on the
CPU keep their best rows through the compiled loops (:mod:`core.search._compiled`).

A single cosine query on the CPU is answered the same way whatever came before it: the rows that may be
among its ``k`` best (from the int8 first pass when :meth:`SearchIndex.prepare` attached one, else from
the float32 scan, widened by its rounding) are scored again in float64 and ranked by those exact scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from core.errors import ParameterError
from core.progress import Reporter
from core.search._backends import NumpyOps, Ops, TorchOps, topk_numpy
from core.search._int8 import MAX_QUERIES
from core.search.index import SearchIndex

#: Values in one block × chunk score matrix (64 MiB of float32): bounds memory on any vocabulary size.
_SCORE_ELEMS = 1 << 24
#: Queries scored together against one chunk of the vocabulary.
_BLOCK_ROWS = 2048
#: Added to the 3CosMul denominator, as gensim does, so a zero similarity cannot divide by zero.
COSMUL_EPS = 1e-6
#: Fewer queries than this (and no shared basis) are answered by numpy alone.
_COMPILED_MIN_QUERIES = 16


def _backend(index: SearchIndex, device: str) -> Ops:
    return TorchOps(index, "cuda") if index.device(device) == "cuda" else NumpyOps(index)


def as_matrix(queries: Any, dim: int, name: str = "queries") -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ParameterError(f"{name} must be vectors of {dim} values (shape n×{dim}); got shape {q.shape}")
    if not np.issubdtype(q.dtype, np.number):
        raise ParameterError(f"{name} must hold numbers; got {q.dtype}")
    if q.shape[0] == 0:
        raise ParameterError(f"{name} is empty; give at least one query vector")
    return q


def exclusions(exclude: Any, n_out: int) -> np.ndarray | None:
    """Per-query excluded row ids as an (n_out × e) int array padded with -1, or None."""
    if exclude is None:
        return None
    if isinstance(exclude, np.ndarray) and exclude.dtype != object:
        e = exclude.astype(np.int64, copy=False)
        if e.ndim == 1:
            e = e[:, None]
    else:
        seqs = [np.atleast_1d(np.asarray(x, dtype=np.int64)) for x in exclude]
        width = max((s.size for s in seqs), default=0)
        e = np.full((len(seqs), max(width, 1)), -1, dtype=np.int64)
        for i, s in enumerate(seqs):
            e[i, :s.size] = s
    if e.ndim != 2 or e.shape[0] != n_out:
        raise ParameterError(f"exclude must give one list of row ids per query ({n_out}); got {e.shape[0]}")
    return e


def term_rows(terms: Any, n_basis: int, name: str) -> np.ndarray:
    t = np.asarray(terms)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] == 0 or not np.issubdtype(t.dtype, np.integer):
        raise ParameterError(f"{name} must be an (n_queries × terms) array of basis row numbers; got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= n_basis):
        raise ParameterError(f"{name} must hold basis row numbers from 0 to {n_basis - 1}")
    return t.astype(np.int64, copy=False)


@dataclass
class Plan:
    """What one scan multiplies with the matrix, and how the products become scores.

    With ``terms`` None, output i is scored against ``basis[i]`` (after ``prepare``, per block, so a
    caller's large query array is never copied whole). Otherwise the basis is small and shared: its
    products with a chunk are computed once, and output i combines rows ``terms[i]`` of them: a weighted
    sum ("cosine", "dot", "euclidean") or the 3CosMul ratio ("cosmul", first ``n_pos`` terms positive).
    """

    basis: np.ndarray
    mode: str
    terms: np.ndarray | None = None
    weights: np.ndarray | None = None
    n_pos: int = 0
    prepare: Callable[[np.ndarray], np.ndarray] | None = None
    qnorms: np.ndarray | None = None

    @property
    def n_out(self) -> int:
        return self.basis.shape[0] if self.terms is None else self.terms.shape[0]

    @cached_property
    def signs(self) -> list[float]:
        """Per term column: 1.0 or -1.0 when every weight of the column is that, else 0.0 (general)."""
        if self.weights is None:
            return [1.0] * (0 if self.terms is None else self.terms.shape[1])
        out = []
        for j in range(self.weights.shape[1]):
            col = self.weights[:, j]
            out.append(1.0 if (col == 1.0).all() else -1.0 if (col == -1.0).all() else 0.0)
        return out


def check_restrict(n_rows: int, restrict: int | None) -> int:
    if restrict is None:
        return n_rows
    if isinstance(restrict, bool) or not isinstance(restrict, (int, np.integer)) or restrict < 1:
        raise ParameterError(f"restrict (first N rows) must be a whole number of at least 1; got {restrict!r}")
    return min(int(restrict), n_rows)


def scan(index: SearchIndex, plan: Plan, k: int, exclude: np.ndarray | None, restrict: int | None,
         mask: np.ndarray | None, device: str, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows by score for every output of ``plan``: the loop behind every search.

    Returns numpy (ids, scores), each row best first (ties to the lower id); -1 / -inf where fewer than
    ``k`` rows could be returned.
    """
    n_rows = len(index.matrix)
    n_scan = check_restrict(n_rows, restrict)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n_rows,):
            raise ParameterError(f"mask must have one entry per row ({n_rows}); got shape {mask.shape}")
        n_cand = int(np.count_nonzero(mask[:n_scan]))
    else:
        n_cand = n_scan
    if k > n_cand:
        where = "rows" if n_cand == n_rows else "candidate rows left by restrict and the filters"
        raise ParameterError(f"k must be at most the {n_cand:,} {where}; got {k:,}")
    blocked = None if mask is None else ~mask[:n_scan]
    if plan.terms is not None and not np.isfinite(plan.basis).all():
        raise ParameterError(f"{what}: a query vector has NaN or infinite values")
    check_nan = index.has_nonfinite
    if (plan.terms is None and plan.mode == "cosine" and plan.n_out <= MAX_QUERIES and not check_nan
            and index.device(device) == "cpu"):
        vals_np, ids_np = _scan_single(index, plan, k, exclude, n_scan, blocked, report, what)
    else:
        vals_np, ids_np = _scan_all(index, plan, k, exclude, n_scan, blocked, check_nan, device, report, what)
    if plan.qnorms is not None:
        # A positive factor per query does not change its ranking, so it is applied to the winners only.
        vals_np /= np.where(plan.qnorms > 0, plan.qnorms, np.inf).astype(np.float32)[:, None]
    ids_np[np.isneginf(vals_np)] = -1
    order = rank_order(ids_np, -vals_np)
    report(1.0, what)
    return np.take_along_axis(ids_np, order, axis=1), np.take_along_axis(vals_np, order, axis=1)


def rank_order(ids: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Per row, the order that sorts by ``key`` ascending, ties to the lower id, -1 (no row) last."""
    return np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), key), axis=1)


def chunk_rows(n_scan: int, width: int, dim: int) -> int:
    """Matrix rows per chunk: a (width × chunk) score block stays within ``_SCORE_ELEMS`` values, and the rows
    read per chunk within 64 MiB."""
    return max(1, min(n_scan, _SCORE_ELEMS // width, max(1024, (1 << 26) // max(1, dim))))


def prepared(plan: Plan, b0: int, b1: int, what: str) -> np.ndarray:
    """Queries ``b0:b1`` of a plan as the engine multiplies them (e.g. unit length for cosine)."""
    q = plan.prepare(np.asarray(plan.basis[b0:b1])) if plan.prepare else plan.basis[b0:b1]
    if not np.isfinite(q).all():
        raise ParameterError(f"{what}: a query vector has NaN or infinite values")
    return q


def _scan_single(index: SearchIndex, plan: Plan, k: int, exclude: np.ndarray | None, n_scan: int,
                 blocked: np.ndarray | None, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top ``k`` of a single query, ranked by exact scores whichever pass found the candidates.

    The candidates are every row that may be among the exact ``k`` best: from the int8 first pass when one
    is attached (it bounds its own error), else from the float32 scores, widened by what float32 rounding
    can move a score. Both are scored again in float64, so neither earlier queries nor
    :meth:`SearchIndex.prepare` change an answer, ties included (they go to the lower id).
    """
    report(0.0, what)
    q = np.asarray(prepared(plan, 0, plan.n_out, what), dtype=np.float32)
    first = index.first_pass
    doubt = first.candidates(q, k, n_scan, blocked, exclude) if first is not None else None
    if doubt is None:
        doubt = [_float32_candidates(index, q[b], k, n_scan, blocked, None if exclude is None else exclude[b])
                 for b in range(q.shape[0])]
    out_s = np.full((len(doubt), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(doubt), k), -1, dtype=np.int64)
    for b, rows in enumerate(doubt):
        out_s[b], out_i[b] = _exact_top(index.matrix.vectors, np.sort(rows), q[b], k)
    return out_s, out_i


def _float32_candidates(index: SearchIndex, q: np.ndarray, k: int, n_scan: int, blocked: np.ndarray | None,
                        exclude: np.ndarray | None) -> np.ndarray:
    """Rows whose float32 cosine comes within rounding distance of the ``k``-th best (one pass)."""
    ops = NumpyOps(index)
    s = np.empty(n_scan, dtype=np.float32)
    chunk = chunk_rows(n_scan, 1, index.matrix.dim)
    for c0 in range(0, n_scan, chunk):
        c1 = min(n_scan, c0 + chunk)
        np.divide(ops.matmul(q[None], ops.rows(c0, c1))[0], ops.norms(c0, c1), out=s[c0:c1])
    if blocked is not None:
        s[blocked] = -np.inf
    if exclude is not None:
        s[exclude[(exclude >= 0) & (exclude < n_scan)]] = -np.inf
    kth = float(topk_numpy(s[None], min(k, n_scan))[0].min())
    if not np.isfinite(kth):
        return np.flatnonzero(np.isfinite(s))
    # A float32 dot product of unit-length vectors is off by at most ~dim·2⁻²⁴, and so is the norm.
    slack = 4 * (index.matrix.dim + 16) * 2.0 ** -24 + 1e-6
    return np.flatnonzero(s >= kth - 2 * slack)


def _exact_top(vectors: np.ndarray, rows: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of ``rows`` (sorted ids) by cosine with ``q`` computed in float64, ties to the lower id."""
    q64 = q.astype(np.float64)
    best_s = np.empty(0, dtype=np.float32)
    best_i = np.empty(0, dtype=np.int64)
    step = max(1, (1 << 22) // max(1, vectors.shape[1]))
    for a in range(0, rows.size, step):
        ids = rows[a:a + step]
        x = np.asarray(vectors[ids], dtype=np.float64)
        # einsum, not BLAS: the same sums whichever rows come along, and no BLAS threads woken against torch's.
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        s = (np.einsum("ij,j->i", x, q64) / np.where(norms > 0, norms, np.inf)).astype(np.float32)
        best_s, best_i = np.concatenate([best_s, s]), np.concatenate([best_i, ids])
        top = np.lexsort((best_i, -best_s))[:k]
        best_s, best_i = best_s[top], best_i[top]
    out_s = np.full(k, -np.inf, dtype=np.float32)
    out_i = np.full(k, -1, dtype=np.int64)
    out_s[:best_s.size], out_i[:best_i.size] = best_s, best_i
    return out_s, out_i


def _scan_all(index: SearchIndex, plan: Plan, k: int, exclude: np.ndarray | None, n_scan: int,
              blocked: np.ndarray | None, check_nan: bool, device: str, report: Reporter,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (unordered) of every output of ``plan`` by one pass over the first ``n_scan`` rows."""
    ops: Any = _backend(index, device)
    n_out = plan.n_out
    shared = plan.terms is not None
    # The compiled loops pay numba's import (~0.3 s) once per process: worth it for batches, not one query.
    if isinstance(ops, NumpyOps) and (shared or n_out >= _COMPILED_MIN_QUERIES):
        from core.search import _compiled  # numba's import (~0.3 s): paid by batches only

        if k <= _compiled.max_k():
            return _compiled.scan_compiled(ops, plan, k, exclude, n_scan, blocked, report, what)
    block = max(1, min(n_out, _BLOCK_ROWS))
    width = max(block, plan.basis.shape[0]) if shared else block
    chunk = chunk_rows(n_scan, width, index.matrix.dim)
    n_blocks, n_chunks = -(-n_out // block), -(-n_scan // chunk)

    basis: Any = None
    terms: Any = None
    weights: Any = None
    if shared:
        basis = ops.put(plan.basis)
        terms = ops.ints(plan.terms)
        if plan.weights is not None:
            weights = ops.put(plan.weights)

    best_s = ops.full((n_out, k), -ops.inf)
    best_i = ops.full((n_out, k), -1, ints=True)
    step = 0
    for c0 in range(0, n_scan, chunk):
        c1 = min(n_scan, c0 + chunk)
        rows = ops.rows(c0, c1)
        cols = np.flatnonzero(blocked[c0:c1]) if blocked is not None else np.empty(0, dtype=np.int64)
        cols_dev = ops.ints(cols) if cols.size else None
        if shared:
            f = basis_products(ops, plan, basis, rows, c0, c1)
        for b0 in range(0, n_out, block):
            report(step / (n_blocks * n_chunks), what)
            step += 1
            b1 = min(n_out, b0 + block)
            if shared:
                s = _combine(ops, plan, f, terms[b0:b1], None if weights is None else weights[b0:b1])
                if plan.mode == "euclidean":
                    s *= 2.0
                    s -= ops.sqnorms(c0, c1)[None, :]
            else:
                s = query_scores(ops, plan, rows, b0, b1, c0, c1, what)
            if check_nan:
                s = ops.fix_nan(s)
            if cols_dev is not None:
                s[:, cols_dev] = -ops.inf
            if exclude is not None:
                ex = exclude[b0:b1]
                qi, ej = np.nonzero((ex >= c0) & (ex < c1))
                if qi.size:
                    s[ops.ints(qi), ops.ints(ex[qi, ej] - c0)] = -ops.inf
            vals, idx = ops.topk(s, k)
            if n_chunks == 1 and vals.shape[1] == k:
                best_s[b0:b1], best_i[b0:b1] = vals, idx + c0
            else:
                all_s, all_i = ops.cat(best_s[b0:b1], vals), ops.cat(best_i[b0:b1], idx + c0)
                top_s, sel = ops.topk(all_s, k)
                best_s[b0:b1], best_i[b0:b1] = top_s, ops.take(all_i, sel)
    return ops.numpy(best_s).astype(np.float32), ops.numpy(best_i).astype(np.int64)


def basis_products(ops: Any, plan: Plan, basis: Any, rows: Any, c0: int, c1: int) -> Any:
    """Products of a shared basis with rows c0..c1, as the plan's mode combines them (see :class:`Plan`)."""
    f = ops.matmul(basis, rows)
    scale_products(ops, plan, f, c0, c1)
    return f


def scale_products(ops: Any, plan: Plan, f: Any, c0: int, c1: int) -> None:
    """Turn plain products with rows c0..c1 (any block of basis rows) into what the plan's mode combines."""
    if plan.mode in ("cosine", "cosmul"):
        f /= ops.norms(c0, c1)[None, :]
    if plan.mode == "cosmul":
        f += 1.0
        f *= 0.5


def query_scores(ops: Any, plan: Plan, rows: Any, b0: int, b1: int, c0: int, c1: int, what: str) -> Any:
    """Scores of queries b0..b1 against rows c0..c1 (larger is closer)."""
    s = ops.matmul(ops.put(prepared(plan, b0, b1, what)), rows)
    if plan.mode == "cosine":
        s /= ops.norms(c0, c1)[None, :]
    elif plan.mode == "euclidean":
        # Ranking by 2·q·x − |x|² is ranking by −|q − x|²; exact distances come later.
        s *= 2.0
        s -= ops.sqnorms(c0, c1)[None, :]
    return s


def _combine(ops: Any, plan: Plan, f: Any, terms: Any, weights: Any) -> Any:
    """Scores of a block of outputs from the shared basis products ``f`` (see :class:`Plan`)."""
    t = terms.shape[1]
    s = ops.gather(f, terms[:, 0])
    tmp = ops.empty_like(s) if t > 1 else None
    if plan.mode == "cosmul":
        for j in range(1, plan.n_pos):
            s *= ops.gather(f, terms[:, j], out=tmp)
        if plan.n_pos == t:
            s /= 1.0 + COSMUL_EPS
            return s
        den = ops.gather(f, terms[:, plan.n_pos])
        for j in range(plan.n_pos + 1, t):
            den *= ops.gather(f, terms[:, j], out=tmp)
        den += COSMUL_EPS
        s /= den
        return s
    signs = plan.signs
    if signs[0] != 1.0:
        s *= weights[:, 0:1]
    for j in range(1, t):
        part = ops.gather(f, terms[:, j], out=tmp)
        if signs[j] == 1.0:
            s += part
        elif signs[j] == -1.0:
            s -= part
        else:
            part *= weights[:, j:j + 1]
            s += part
    return s


def unit_rows(q: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64 then stored as float32 (gensim's ``unitvec``); zeros stay."""
    q64 = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q64, axis=1, keepdims=True)
    return (q64 / np.where(n > 0, n, 1.0)).astype(np.float32)


def as_float32(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float32)
