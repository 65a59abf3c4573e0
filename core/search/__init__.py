"""Nearest neighbours, analogies and similarity tables: one search engine that everything uses.

    >>> import core
    >>> from core import search
    >>> m = core.load("demo")
    >>> [n.token for n in search.neighbors(m, "king", k=3).neighbors]
    ['kings', 'queen', 'monarch']
    >>> search.neighbors(m, "king - man + woman", k=1).neighbors[0].token
    'queen'
    >>> search.analogy(m, ["king", "woman"], ["man"], k=1, method="mul").neighbors[0].token
    'queen'
    >>> ids, scores = search.knn(m, m.vectors[:100], k=10, exclude=range(100))  # vectors, batched
    >>> m.search_index.prepare()  # attach the int8 first pass: same answers, single queries faster
    True

The rooms:

- :mod:`~core.search.index`: :class:`SearchIndex`, one per matrix (``m.search_index``), owning what the
  search derives from it (norms, filter masks, the device copy, the int8 first pass once prepared), and
  :class:`Filters`.
- :mod:`~core.search.query`: the query language (:func:`parse_formula`, :class:`Query`, :class:`Term`).
- :mod:`~core.search.words`: answers about tokens and words (:func:`neighbors`, :func:`analogy`,
  :func:`doesnt_match`, :func:`similarity`, :func:`similarity_matrix`).
- :mod:`~core.search.knn`: the same on vectors (:func:`knn`, :func:`knn_rows`, :func:`knn_of_sums`,
  :func:`cosmul_knn`), the calls every analysis makes.
- private: the engine (``_engine``), its backends (``_backends``: numpy, torch), the compiled batch loops
  (``_compiled``, ``_kernels``: numba) and the int8 first pass (``_int8``).
"""

from __future__ import annotations

from core.search._backends import DEVICE_ENV, resolve_device
from core.search.index import Filters, SearchIndex
from core.search.knn import METRICS, Metric, candidate_mask, cosmul_knn, knn, knn_of_sums, knn_rows
from core.search.query import Query, Term, looks_like_formula, parse_formula, resolve_query, resolve_term
from core.search.words import (
    LINKAGES,
    METHODS,
    AnalogyMethod,
    Linkage,
    Neighbor,
    Neighbors,
    OddOneOut,
    Scoring,
    SimilarityTable,
    analogy,
    doesnt_match,
    neighbors,
    neighbors_many,
    prepare_search,
    similarity,
    similarity_matrix,
)

__all__ = [
    "DEVICE_ENV",
    "LINKAGES",
    "METHODS",
    "METRICS",
    "AnalogyMethod",
    "Filters",
    "Linkage",
    "Metric",
    "Neighbor",
    "Neighbors",
    "OddOneOut",
    "Query",
    "Scoring",
    "SearchIndex",
    "SimilarityTable",
    "Term",
    "analogy",
    "candidate_mask",
    "cosmul_knn",
    "doesnt_match",
    "knn",
    "knn_of_sums",
    "knn_rows",
    "looks_like_formula",
    "neighbors",
    "neighbors_many",
    "parse_formula",
    "prepare_search",
    "resolve_device",
    "resolve_query",
    "resolve_term",
    "similarity",
    "similarity_matrix",
]
