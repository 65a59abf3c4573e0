"""Neighbour search on vectors: :func:`knn` and its batched forms, the one search every analysis uses.

    >>> import core
    >>> from core import search
    >>> m = core.load("demo")
    >>> ids, scores = search.knn(m, m.vectors[:100], k=10, exclude=range(100))  # batched
    >>> ids, scores = search.knn_rows(m, k=10)  # every row's neighbours, itself left out

Scores follow gensim: cosine is ``most_similar``'s, 3CosMul is ``most_similar_cosmul``'s. Every function
here runs the engine (:mod:`core.search._engine`) on the matrix's :class:`~core.search.SearchIndex`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from core.errors import ParameterError
from core.progress import CancelFn, ProgressFn, Reporter
from core.search._engine import Plan, as_float32, as_matrix, exclusions, rank_order, scan, term_rows, unit_rows
from core.search.index import Filters

if TYPE_CHECKING:
    from core.matrix import EmbeddingMatrix

#: Neighbour metrics: cosine and dot (larger is closer), euclidean (smaller is closer).
Metric = Literal["cosine", "euclidean", "dot"]
METRICS: tuple[Metric, ...] = get_args(Metric)


def candidate_mask(m: EmbeddingMatrix, filters: Filters | None) -> np.ndarray | None:
    """Boolean row mask (True = may be returned) for the kind filters, or None when nothing is hidden.

    Kept by the matrix's search index, one per filter combination; read-only.
    """
    return m.search_index.mask(filters)


def check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError(f"{name} must be a whole number; got {k!r}")
    if k < 1:
        raise ParameterError(f"{name} must be at least 1; got {k}")
    return int(k)


def _finish(m: EmbeddingMatrix, metric: str, ids: np.ndarray, scores: np.ndarray,
            queries: Callable[[int, int], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean: exact distances for the winners; pads become NaN; arrays read-only."""
    if metric == "euclidean" and queries is not None:
        scores = _exact_distances(m, queries, ids)
        order = rank_order(ids, scores)
        ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
    scores = scores.astype(np.float32)
    scores[ids < 0] = np.nan
    ids.setflags(write=False)
    scores.setflags(write=False)
    return ids, scores


def _exact_distances(m: EmbeddingMatrix, queries: Callable[[int, int], np.ndarray],
                     ids: np.ndarray) -> np.ndarray:
    """|q − x| for the chosen rows, computed directly (the expanded form loses precision near 0)."""
    out = np.full(ids.shape, np.inf, dtype=np.float64)
    step = max(1, (1 << 22) // max(1, ids.shape[1] * m.dim))
    for s in range(0, ids.shape[0], step):
        sub = ids[s:s + step]
        ok = sub >= 0
        rows = np.asarray(m.vectors[np.where(ok, sub, 0).ravel()], dtype=np.float64).reshape(*sub.shape, m.dim)
        q = np.asarray(queries(s, s + sub.shape[0]), dtype=np.float64)
        out[s:s + step] = np.where(ok, np.linalg.norm(rows - q[:, None, :], axis=2), np.inf)
    return out


def check_metric(metric: str) -> Metric:
    """``metric`` as a :data:`Metric`.

    Raises:
        ParameterError: not one of :data:`METRICS`.
    """
    for known in METRICS:
        if metric == known:
            return known
    raise ParameterError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def knn(m: EmbeddingMatrix, queries: Any, k: int = 10, metric: Metric = "cosine", *, exclude: Any = None,
        restrict: int | None = None, mask: np.ndarray | None = None, device: str = "auto",
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``m`` to each query vector; the one neighbour search of Embedscope.

    Args:
        m: the matrix searched.
        queries: query vectors, shape (n_queries, dim) or (dim,). Rows of ``m.vectors`` are fine: the
            batch is read block by block, never copied whole.
        k: neighbours per query, 1 ≤ k ≤ number of candidate rows.
        metric: "cosine" (largest first; = gensim ``most_similar``), "dot" (largest first) or
            "euclidean" (smallest distance first).
        exclude: rows never returned for a given query: an int array of one id per query (e.g. the
            query's own row), an (n_queries × e) int array padded with -1, or a list of id lists.
        restrict: search only the first N rows (gensim's ``restrict_vocab``).
        mask: boolean array over all rows, True where a row may be returned (see :func:`candidate_mask`).
        device: "auto" (CUDA when torch sees one, else CPU; $EMBEDSCOPE_DEVICE overrides), "cpu", "cuda".
        progress, cancel: see :mod:`core.progress`; reported per block of queries × chunk of rows.

    Returns:
        (ids, scores): read-only arrays of shape (n_queries, k), best first; ties go to the lower id.
        Scores are cosine similarities, dot products, or euclidean distances. Where exclusions leave
        fewer than ``k`` rows, ids are -1 and scores NaN.

    Raises:
        ParameterError: bad k, metric, shapes or restrict. Cancelled: through ``cancel``.
    """
    check_metric(metric)
    k = check_k(k)
    q = as_matrix(queries, m.dim)
    plan = Plan(q, metric, prepare=unit_rows if metric == "cosine" else as_float32)
    ids, scores = scan(m.search_index, plan, k, exclusions(exclude, q.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), f"{metric} neighbours")
    return _finish(m, metric, ids, scores, lambda a, b: q[a:b])


def knn_of_sums(m: EmbeddingMatrix, basis: Any, terms: Any, weights: Any, k: int = 10, metric: Metric = "cosine",
                *, exclude: Any = None, restrict: int | None = None, mask: np.ndarray | None = None,
                device: str = "auto", progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn` for queries that are weighted sums of a few shared vectors (analogies in bulk).

    Query i is ``Σ_j weights[i, j] · basis[terms[i, j]]``. The products of the basis with each chunk of
    the matrix are computed once and combined per query, so 19,544 analogy questions over 905 distinct
    words cost 905 rows of matrix product, not 19,544. For 3CosAdd, pass unit-length basis rows.

    Args:
        basis: (n_basis × dim) vectors.
        terms: (n_queries × t) row numbers into ``basis``.
        weights: (n_queries × t) weights (e.g. +1, +1, -1 for b + c − a).
        k, metric, exclude, restrict, mask, device, progress, cancel: as in :func:`knn`.
    """
    check_metric(metric)
    k = check_k(k)
    b = as_matrix(basis, m.dim, "basis").astype(np.float32, copy=False)
    t = term_rows(terms, b.shape[0], "terms")
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim == 1:
        w = w[:, None]
    if w.shape != t.shape:
        raise ParameterError(f"weights must have the shape of terms {t.shape}; got {w.shape}")

    def query(a: int, z: int) -> np.ndarray:
        out = np.zeros((z - a, m.dim), dtype=np.float32)
        for j in range(t.shape[1]):
            out += w[a:z, j:j + 1] * b[t[a:z, j]]
        return out

    qnorms = None
    if metric == "cosine":
        qnorms = np.concatenate([np.linalg.norm(query(a, min(a + 4096, t.shape[0])).astype(np.float64), axis=1)
                                 for a in range(0, t.shape[0], 4096)])
    plan = Plan(b, metric, terms=t, weights=w, qnorms=qnorms)
    ids, scores = scan(m.search_index, plan, k, exclusions(exclude, t.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), f"{metric} neighbours of sums")
    return _finish(m, metric, ids, scores, query)


def cosmul_knn(m: EmbeddingMatrix, basis: Any, positive: Any, negative: Any = None, k: int = 10, *,
               exclude: Any = None, restrict: int | None = None, mask: np.ndarray | None = None,
               device: str = "auto", progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """3CosMul (Levy & Goldberg; gensim ``most_similar_cosmul``) for a batch of analogies.

    The score of row x is Π_pos (1 + cos(x, p)) / 2 ÷ (Π_neg (1 + cos(x, n)) / 2 + 1e-6).

    Args:
        basis: (n_basis × dim) term vectors (any length; cosine is taken).
        positive: (n_queries × P) row numbers into ``basis``, P ≥ 1.
        negative: (n_queries × N) row numbers into ``basis``, or None.
        k, exclude, restrict, mask, device, progress, cancel: as in :func:`knn`.

    Returns:
        (ids, scores), read-only, shape (n_queries, k), best first.
    """
    k = check_k(k)
    b = unit_rows(as_matrix(basis, m.dim, "basis"))
    pos = term_rows(positive, b.shape[0], "positive")
    neg = None if negative is None else term_rows(negative, b.shape[0], "negative")
    if neg is not None and neg.shape[0] != pos.shape[0]:
        raise ParameterError(f"negative must have one row per query ({pos.shape[0]}); got {neg.shape[0]}")
    t = pos if neg is None or neg.shape[1] == 0 else np.concatenate([pos, neg], axis=1)
    plan = Plan(b, "cosmul", terms=t, n_pos=pos.shape[1])
    ids, scores = scan(m.search_index, plan, k, exclusions(exclude, t.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), "3CosMul")
    return _finish(m, "cosmul", ids, scores)


def knn_rows(m: EmbeddingMatrix, ids: Any = None, k: int = 10, metric: Metric = "cosine", *,
             restrict: int | None = None, mask: np.ndarray | None = None, device: str = "auto",
             progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of rows of ``m`` itself (each row's own id excluded); all rows when ``ids`` is None.

    This is what Jaccard@k between two matrices needs: ``knn_rows(a, k=10)`` and ``knn_rows(b, k=10)``.
    """
    if ids is None:
        rows, queries = np.arange(len(m)), m.vectors
    else:
        rows = (np.asarray(ids, dtype=np.int64) if isinstance(ids, np.ndarray)
                else m.get_indices(ids))
        if rows.size and (rows.min() < 0 or rows.max() >= len(m)):
            raise ParameterError(f"ids must be row ids from 0 to {len(m) - 1}")
        queries = m.vectors[rows]
    return knn(m, queries, k, metric, exclude=rows, restrict=restrict, mask=mask, device=device,
               progress=progress, cancel=cancel)


__all__ = ["METRICS", "candidate_mask", "cosmul_knn", "knn", "knn_of_sums", "knn_rows"]
