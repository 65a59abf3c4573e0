"""Neighbours, analogies, the odd one out and similarity tables of tokens, words and formulas.

    >>> import core
    >>> from core import search
    >>> m = core.load("demo")
    >>> [n.token for n in search.neighbors(m, "king", k=3).neighbors]
    ['kings', 'queen', 'monarch']
    >>> search.neighbors(m, "king - man + woman", k=1).neighbors[0].token
    'queen'

Scores follow gensim's definitions so numbers can be quoted next to published ones: :func:`neighbors` with
cosine is ``KeyedVectors.most_similar``, ``analogy(method="add")`` is ``most_similar(positive, negative)``
(3CosAdd), ``analogy(method="mul")`` is ``most_similar_cosmul`` (3CosMul), :func:`doesnt_match` is
``doesnt_match``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from core.errors import ParameterError, TokenNotFound
from core.progress import CancelFn, ProgressFn
from core.search._engine import unit_rows
from core.search.index import Filters
from core.search.knn import Metric, candidate_mask, check_metric, cosmul_knn, knn
from core.search.query import Query, Term, resolve_query, resolve_term, unit

if TYPE_CHECKING:
    import pandas as pd

    from core.matrix import EmbeddingMatrix

#: Analogy methods: "add" = 3CosAdd (gensim most_similar), "mul" = 3CosMul (most_similar_cosmul).
AnalogyMethod = Literal["add", "mul"]
METHODS: tuple[AnalogyMethod, ...] = get_args(AnalogyMethod)
#: What a result's scores are: a neighbour metric, or 3CosMul's ratio.
Scoring = Metric | Literal["3cosmul"]
#: scipy linkage methods for ordering a similarity table.
Linkage = Literal["average", "complete", "single", "weighted"]
LINKAGES: tuple[Linkage, ...] = get_args(Linkage)


@dataclass(frozen=True)
class Neighbor:
    """One result row."""

    token: str
    id: int
    score: float
    kind: str = ""


@dataclass(frozen=True)
class Neighbors:
    """The answer to one query.

    Attributes:
        query: the parsed query (its notes say how a split word or formula was read).
        metric: "cosine", "euclidean", "dot", or "3cosmul".
        neighbors: best first.
    """

    query: Query
    metric: Scoring
    neighbors: list[Neighbor]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "euclidean"

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"rank": np.arange(1, len(self.neighbors) + 1),
                             "token": [n.token for n in self.neighbors],
                             "id": [n.id for n in self.neighbors],
                             "kind": [n.kind for n in self.neighbors],
                             "score": [n.score for n in self.neighbors]})

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``neighbors --json`` shape (plus metric and notes)."""
        return {"query": self.query.text, "metric": self.metric, "notes": self.query.notes(),
                "neighbors": [{"token": n.token, "id": n.id, "score": n.score} for n in self.neighbors]}

    def to_analogy_json(self) -> dict[str, Any]:
        """The CLI's ``analogy --json`` shape: query, method ("add" or "mul"), notes, results."""
        return {"query": self.query.text, "method": "mul" if self.metric == "3cosmul" else "add",
                "notes": self.query.notes(),
                "results": [{"token": n.token, "score": n.score, "id": n.id} for n in self.neighbors]}


def _results(m: EmbeddingMatrix, query: Query, metric: Scoring, ids: np.ndarray, scores: np.ndarray) -> Neighbors:
    kinds = m.kinds
    out = [Neighbor(m.index_to_key[i], int(i), float(s), kinds[i]) for i, s in zip(ids, scores, strict=True)
           if i >= 0]
    return Neighbors(query, metric, out)


def _as_query(m: EmbeddingMatrix, query: str | Query) -> Query:
    return query if isinstance(query, Query) else resolve_query(m, query)


def prepare_search(m: EmbeddingMatrix) -> bool:
    """Attach to ``m`` what makes its later single queries fast (the int8 first pass), with the same answers:
    ``m.search_index.prepare()``. For a server, on a thread of its own. Returns whether single queries use it."""
    return m.search_index.prepare()


def neighbors(m: EmbeddingMatrix, query: str | Query, k: int = 10, metric: Metric = "cosine",
              filters: Filters | None = None, device: str = "auto") -> Neighbors:
    """The ``k`` nearest tokens to a query (a token, a split word, or a formula — 3CosAdd with cosine).

    With cosine this is gensim's ``most_similar(positive=..., negative=...)``: single-token terms of the
    query are left out of the results.

    Raises:
        ParameterError: bad k/metric/filters or formula. TokenNotFound: an unknown term.
    """
    return neighbors_many(m, [query], k, metric, filters, device)[0]


def neighbors_many(m: EmbeddingMatrix, queries: Sequence[str | Query], k: int = 10, metric: str = "cosine",
                   filters: Filters | None = None, device: str = "auto", progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> list[Neighbors]:
    """:func:`neighbors` for many queries in one pass over the matrix (one product per chunk)."""
    if not queries:
        raise ParameterError("queries is empty; give at least one query")
    checked = check_metric(metric)
    parsed = [_as_query(m, q) for q in queries]
    vecs = np.stack([np.asarray(p.vector(checked), dtype=np.float32) for p in parsed])
    exclude = [list(p.exclude) for p in parsed]
    f = filters or Filters()
    ids, scores = knn(m, vecs, k, checked, exclude=exclude, restrict=f.first_n, mask=candidate_mask(m, f),
                      device=device, progress=progress, cancel=cancel)
    return [_results(m, p, checked, ids[i], scores[i]) for i, p in enumerate(parsed)]


def analogy(m: EmbeddingMatrix, query: str | Query | Sequence[str], negative: Sequence[str] = (), k: int = 10,
            method: AnalogyMethod = "add", filters: Filters | None = None, device: str = "auto") -> Neighbors:
    """Solve an analogy: ``analogy(m, "king - man + woman")`` or ``analogy(m, ["king", "woman"], ["man"])``.

    Args:
        method: "add" (3CosAdd = gensim ``most_similar``) or "mul" (3CosMul = ``most_similar_cosmul``).

    Raises:
        ParameterError: bad method, syntax, or 3CosMul with coefficients or without a positive term.
        TokenNotFound: an unknown term.
    """
    if method not in METHODS:
        raise ParameterError(f"method must be 'add' (3CosAdd) or 'mul' (3CosMul); got {method!r}")
    if isinstance(query, (str, Query)):
        if negative:
            raise ParameterError("negative terms go into the formula ('king - man + woman') when query is text")
        q = _as_query(m, query)
    else:
        terms = [resolve_term(m, w, 1.0) for w in query] + [resolve_term(m, w, -1.0) for w in negative]
        if not terms:
            raise ParameterError("analogy needs at least one positive term")
        q = Query(" + ".join(query) + "".join(f" - {w}" for w in negative), tuple(terms))
    if method == "add":
        return neighbors(m, q, k, "cosine", filters, device)
    if any(abs(t.weight) != 1.0 for t in q.terms):
        raise ParameterError("3CosMul takes plain + and - terms; drop the coefficients or use method 'add'")
    if not q.positive:
        raise ParameterError("3CosMul needs at least one positive term")
    f = filters or Filters()
    basis = np.stack([unit(t.vector) for t in (*q.positive, *q.negative)])
    n_pos = len(q.positive)
    neg_terms = np.arange(n_pos, len(basis))[None, :] if q.negative else None
    ids, scores = cosmul_knn(m, basis, np.arange(n_pos)[None, :], neg_terms, k, exclude=[list(q.exclude)],
                             restrict=f.first_n, mask=candidate_mask(m, f), device=device)
    return _results(m, q, "3cosmul", ids[0], scores[0])


def similarity(m: EmbeddingMatrix, a: str, b: str) -> float:
    """Cosine similarity of two tokens or texts (gensim ``similarity`` for tokens)."""
    va, vb = resolve_term(m, a).vector, resolve_term(m, b).vector
    return float(np.dot(unit_rows(np.asarray(va)[None])[0].astype(np.float64),
                        unit_rows(np.asarray(vb)[None])[0].astype(np.float64)))


# ================================================================================================
# Lists: which one doesn't belong, similarity tables
# ================================================================================================
def _resolve_items(m: EmbeddingMatrix, items: Sequence[str]) -> tuple[list[Term], list[TokenNotFound]]:
    if isinstance(items, str):
        raise ParameterError("items must be a list of words or texts, not one string")
    clean = list(dict.fromkeys(s.strip() for s in items if isinstance(s, str) and s.strip()))
    if not clean:
        raise ParameterError("the list of words is empty; give at least two words or texts")
    found: list[Term] = []
    missing: list[TokenNotFound] = []
    for text in clean:
        try:
            found.append(resolve_term(m, text))
        except TokenNotFound as err:
            missing.append(err)
    return found, missing


@dataclass(frozen=True)
class OddOneOut:
    """The answer of :func:`doesnt_match`.

    Attributes:
        odd: the item furthest from the mean of all items.
        ranking: (item, cosine to the mean), most central first.
        missing: items not in the vocabulary, each with suggestions (the rest were still ranked).
        terms: how each item was read.
    """

    odd: str
    ranking: list[tuple[str, float]]
    missing: list[TokenNotFound]
    terms: list[Term]

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``doesnt-match --json`` shape: odd, ranking (token, score), missing (token, suggestions)."""
        return {"odd": self.odd, "ranking": [{"token": w, "score": s} for w, s in self.ranking],
                "missing": [{"token": e.token, "suggestions": e.suggestions} for e in self.missing]}


def doesnt_match(m: EmbeddingMatrix, items: Sequence[str]) -> OddOneOut:
    """Which item doesn't go with the others (gensim ``doesnt_match``: furthest from the mean unit vector).

    Raises:
        ParameterError: fewer than two known items.
    """
    found, missing = _resolve_items(m, items)
    if len(found) < 2:
        lost = "; ".join(str(e) for e in missing)
        raise ParameterError(f"which one doesn't belong needs at least two known words; got {len(found)}"
                             + (f" ({lost})" if lost else ""))
    units = np.stack([unit(t.vector) for t in found])
    mean = units.astype(np.float64).mean(axis=0)
    mean = (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)
    dists = units @ mean
    ranking = sorted(zip((float(d) for d in dists), (t.text for t in found), strict=True), reverse=True)
    return OddOneOut(ranking[-1][1], [(w, d) for d, w in ranking], missing, found)


@dataclass(frozen=True)
class SimilarityTable:
    """Pairwise cosine similarities of a list of words or texts.

    Attributes:
        labels: the items that were found, in display order.
        matrix: (n × n) cosine similarities, read-only, in the order of ``labels``.
        missing: items not in the vocabulary, each with suggestions.
        terms: how each label was read (token, or mean of pieces), in the order of ``labels``.
        clustered: whether the order comes from hierarchical clustering.
    """

    labels: list[str]
    matrix: np.ndarray
    missing: list[TokenNotFound]
    terms: list[Term]
    clustered: bool = False

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.matrix, index=self.labels, columns=self.labels)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``similarity --json`` shape (plus missing items)."""
        return {"tokens": list(self.labels), "matrix": self.matrix.astype(float).tolist(),
                "missing": [{"token": e.token, "suggestions": e.suggestions, "error": str(e)}
                            for e in self.missing]}


def similarity_matrix(m: EmbeddingMatrix, items: Sequence[str], cluster: bool = False,
                      method: str = "average") -> SimilarityTable:
    """Cosine similarities between items; unknown items are reported in ``missing``, not raised.

    Args:
        items: tokens or texts (a text the tokenizer splits is the mean of its pieces).
        cluster: order the items by hierarchical clustering (scipy, optimal leaf order) on 1 − cosine.
        method: the scipy linkage method ("average", "complete", "single", "weighted").

    Raises:
        ParameterError: an empty list or an unknown linkage method.
    """
    if method not in LINKAGES:
        raise ParameterError(f"method must be average, complete, single or weighted; got {method!r}")
    found, missing = _resolve_items(m, items)
    if found:
        units = unit_rows(np.stack([np.asarray(t.vector, dtype=np.float64) for t in found])).astype(np.float64)
        sim = np.clip(units @ units.T, -1.0, 1.0)
    else:
        sim = np.zeros((0, 0))
    order = np.arange(len(found))
    clustered = False
    if cluster and len(found) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
        from scipy.spatial.distance import squareform

        dist = np.clip(1.0 - sim, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        condensed = squareform((dist + dist.T) / 2.0, checks=False)
        z = linkage(condensed, method=method)
        order = leaves_list(optimal_leaf_ordering(z, condensed))
        clustered = True
    sim = sim[np.ix_(order, order)]
    sim.setflags(write=False)
    terms = [found[i] for i in order]
    return SimilarityTable([t.text for t in terms], sim, missing, terms, clustered)


__all__ = ["METHODS", "Neighbor", "Neighbors", "OddOneOut", "SimilarityTable", "analogy", "doesnt_match",
           "neighbors", "neighbors_many", "prepare_search", "similarity", "similarity_matrix"]
