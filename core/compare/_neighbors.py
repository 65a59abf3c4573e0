"""Neighbourhoods: each compared token's k nearest compared tokens in one matrix, and Jaccard@k of two."""

from __future__ import annotations

import numpy as np

from core.compare._approx import NNDescentWorker, approximate_neighbors
from core.compare._common import _readonly, positions_dtype
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn
from core.search import knn


def _neighbors(m: EmbeddingMatrix, rows: np.ndarray, k: int, device: str, progress: ProgressFn,
               cancel: CancelFn | None, search: str = "exact",
               worker: NNDescentWorker | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each compared row's k nearest neighbours among the compared rows (itself left out), as positions.

    One call of :func:`core.search.knn` (``search="exact"``), or NN-descent's graph
    (``search="approximate"``, :mod:`core.compare._approx`). When every row is compared, in order, the
    matrix itself is the query batch (read block by block, no copy) and no mask is needed.
    """
    if search == "approximate":
        return approximate_neighbors(m, rows, k, progress=progress, cancel=cancel, worker=worker)
    everything = rows.size == len(m) and bool(np.all(rows == np.arange(len(m))))
    if everything:
        queries, mask = m.vectors, None
    else:
        queries = m.vectors[rows]
        mask = np.zeros(len(m), dtype=bool)
        mask[rows] = True
    ids, scores = knn(m, queries, k, "cosine", exclude=rows, mask=mask, device=device, progress=progress,
                      cancel=cancel)
    where = np.full(len(m), -1, dtype=positions_dtype(rows.size))
    where[rows] = np.arange(rows.size)
    pos = np.where(ids >= 0, where[np.where(ids >= 0, ids, 0)], -1)
    return _readonly(pos), scores


def jaccard(neighbors_a: np.ndarray, neighbors_b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard index of two (n × k) id arrays (ids ≥ 0; -1 pads are ignored); 1.0 for two empty sets.

    Each row of each array holds distinct ids, so after sorting the 2k ids of a row, equal neighbours are
    exactly the equal adjacent pairs.
    """
    both = np.sort(np.concatenate([neighbors_a, neighbors_b], axis=1), axis=1)
    inter = np.count_nonzero((both[:, 1:] == both[:, :-1]) & (both[:, 1:] >= 0), axis=1)
    union = np.count_nonzero(neighbors_a >= 0, axis=1) + np.count_nonzero(neighbors_b >= 0, axis=1) - inter
    return _readonly(np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float64))


