"""Approximate neighbours of every compared token, for vocabularies too large for the exact search.

Jaccard@k needs the k nearest neighbours of every compared row among the compared rows: a self-join whose
exact cost grows with the square of the vocabulary (262,144 rows × 640 dimensions: 8.8·10¹³ multiply-adds
per matrix, about an hour on two cores). Here pynndescent's NN-descent (the k-nearest-neighbour graph UMAP
builds, installed with umap-learn) builds that graph directly, seeded. Recall@k against the exact search is
measured by a ``slow`` test and by bench/bench_compare.py; every comparison that used it says so.
"""

from __future__ import annotations

import numpy as np

from core.compare._common import _readonly
from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

#: Searches that :func:`core.compare.compare` accepts: exact, approximate, or chosen by size.
SEARCHES: tuple[str, ...] = ("auto", "exact", "approximate")
#: "auto" searches exactly while rows² × dimensions stays at or below this (50,000 rows of 640 dimensions,
#: about a minute per matrix on two cores), and approximately past it.
EXACT_MAX_WORK = 50_000 * 50_000 * 640
#: Graph neighbours NN-descent keeps per row, at least (more than k makes its answer closer to exact).
MIN_GRAPH_NEIGHBORS = 30


def choose_search(search: str, rows: int, dim: int, device: str) -> str:
    """"exact" or "approximate" for ``search`` ("auto" decides by size: exact where it is fast enough).

    Raises:
        ParameterError: an unknown search.
    """
    if search not in SEARCHES:
        raise ParameterError(f"search={search!r}: must be one of {', '.join(SEARCHES)}")
    if search != "auto":
        return search
    if rows * rows * dim <= EXACT_MAX_WORK:
        return "exact"
    from core.search import resolve_device

    # A GPU runs the exact search of even the largest vocabularies in seconds.
    return "exact" if resolve_device(device) != "cpu" else "approximate"


def approximate_neighbors(m: EmbeddingMatrix, rows: np.ndarray, k: int, *, seed: int = 0,
                          progress: ProgressFn | None = None,
                           cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each compared row's k nearest compared rows by cosine (itself left out), approximately.

    Args:
        m: the matrix; rows: the compared rows (k < rows.size).
        seed: NN-descent's random state.

    Returns:
        (positions into ``rows``, cosines), read-only, (rows.size × k), best first; -1 / NaN where the graph
        holds fewer than k others for a row.
    """
    from pynndescent import NNDescent

    report = Reporter(progress, cancel)
    report(0.0, "approximate neighbours: building the graph")
    x = np.array(m.vectors[rows], dtype=np.float32)
    # NN-descent cannot rank NaN or infinite rows; as zero rows they are nobody's near neighbour, as in the
    # exact search, which never returns them.
    x[~np.isfinite(x).all(axis=1)] = 0.0
    n = int(rows.size)
    graph = NNDescent(x, n_neighbors=min(n - 1, max(MIN_GRAPH_NEIGHBORS, k + 1)), metric="cosine",
                      random_state=seed, low_memory=True, compressed=True, verbose=False)
    report(0.9, "approximate neighbours: reading the graph")
    found, dist = graph.neighbor_graph
    ids = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), np.nan, dtype=np.float32)
    # A row is usually its own first neighbour, but a duplicate row may come first: drop the row itself
    # wherever it is, then keep the k best others (the graph lists them best first).
    others = (found != np.arange(n)[:, None]) & (found >= 0)
    rank = np.cumsum(others, axis=1) - 1
    keep = others & (rank < k)
    r, c = np.nonzero(keep)
    ids[r, rank[r, c]] = found[r, c]
    scores[r, rank[r, c]] = 1.0 - dist[r, c]
    report(1.0, "approximate neighbours")
    return _readonly(ids), _readonly(scores)


__all__ = ["EXACT_MAX_WORK", "SEARCHES", "approximate_neighbors", "choose_search"]
