"""Projections of an embedding matrix to 2-D or 3-D: which points, which method, how to colour them.

Every projection is two honest steps: a :class:`Selection` (which rows, and how they were chosen, so a
caption can say so) and a method (PCA, t-SNE, UMAP or custom semantic axes) run on exactly those rows.

    >>> import core
    >>> from core.projection import ProjectionConfig, SelectionConfig, project, select
    >>> m = core.load("demo")
    >>> sel = select(m, SelectionConfig(sampling="stratified", sample=2000, seed=0))
    >>> p = project(m, sel, ProjectionConfig(method="pca", dims=2))
    >>> p.coords.shape
    (2000, 2)
    >>> p.caption                                    # doctest: +ELLIPSIS
    'PCA (2-D) of a sample of 2,000 of the 30,522 rows, stratified by token kind ...'

Configs are plain frozen dataclasses, validated up front (:meth:`ProjectionConfig.validate`); every error
names the field and the rule. t-SNE (openTSNE) and UMAP (umap-learn) first reduce to 50 dimensions with
PCA, as their authors recommend.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.errors import FormatError, ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.tokens import KINDS, strip_marker

if TYPE_CHECKING:
    import pandas as pd

#: Projection methods: PCA, t-SNE, UMAP, and custom semantic axes.
METHODS = ("pca", "tsne", "umap", "axes")
#: How points are chosen.
SAMPLINGS = ("first", "random", "stratified", "neighbours", "list")
#: Distances t-SNE and UMAP accept here (each is supported by both libraries' fast paths).
METRICS = ("cosine", "euclidean", "manhattan")
#: Above this many points the browser gets a binned density instead of one mark per point.
BROWSER_MAX_POINTS = 50_000
#: Method names as captions and axis titles show them.
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "axes": "Custom axes"}
#: Word-frequency buckets (Zipf scale: log10 of occurrences per billion words), most common first.
FREQUENCY_BUCKETS = ("very common (zipf ≥ 6)", "common (5–6)", "moderate (4–5)", "uncommon (3–4)",
                     "rare (< 3)", "not in wordfreq", "not a word")

_NEIGHBOURS_CAP = 1000


# -- which points -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SelectionConfig:
    """Which rows to project.

    Attributes:
        sampling: "first" (file order; word2vec files list the most frequent words first), "random" (a
            seeded sample without repeats), "stratified" (seeded, each token kind keeps its share),
            "neighbours" (the ``k`` nearest rows by cosine of each query) or "list" (the ``tokens``).
        sample: how many rows for first/random/stratified; None takes every row.
        seed: the random seed for random and stratified sampling.
        kinds: keep only rows of these token kinds (empty: every kind) before sampling.
        queries: the words whose neighbourhoods are shown ("neighbours").
        k: neighbours per query ("neighbours").
        tokens: the pasted tokens ("list").
        strict: with "list", raise on the first token not in the vocabulary instead of leaving it out.
    """

    sampling: str = "first"
    sample: int | None = None
    seed: int = 0
    kinds: tuple[str, ...] = ()
    queries: tuple[str, ...] = ()
    k: int = 50
    tokens: tuple[str, ...] = ()
    strict: bool = True

    def validate(self, rows: int) -> None:
        """Check every field against a matrix of ``rows`` rows.

        Raises:
            ParameterError: naming the field and the rule.
        """
        if self.sampling not in SAMPLINGS:
            raise ParameterError(f"sampling={self.sampling!r}: must be one of {', '.join(SAMPLINGS)}")
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ParameterError(f"kinds: {', '.join(map(repr, bad))} is not a token kind; choose from "
                                 f"{', '.join(KINDS)}")
        if self.sample is not None:
            if isinstance(self.sample, bool) or not isinstance(self.sample, (int, np.integer)):
                raise ParameterError(f"sample={self.sample!r}: must be a whole number of rows")
            if self.sample < 1:
                raise ParameterError(f"sample={self.sample}: must be at least 1")
            if self.sample > rows:
                raise ParameterError(f"sample={self.sample:,}: larger than the matrix, which has {rows:,} rows; "
                                     f"choose at most {rows:,} (or no sample to take every row)")
        if self.sampling == "neighbours":
            if not any(q.strip() for q in self.queries):
                raise ParameterError("queries: the neighbourhood sampling needs at least one query word")
            if not 1 <= self.k <= _NEIGHBOURS_CAP:
                raise ParameterError(f"k={self.k}: neighbours per query must be between 1 and {_NEIGHBOURS_CAP}")
        if self.sampling == "list" and not any(t.strip() for t in self.tokens):
            raise ParameterError("tokens: the list sampling needs at least one token")


@dataclass(frozen=True, eq=False)
class Selection:
    """The rows chosen for a projection, and how, so the caption can say it.

    Attributes:
        indices: matrix rows, in display order (read-only int64).
        config: the configuration that chose them.
        total: rows in the matrix.
        pool: rows eligible after the ``kinds`` filter.
        groups: for "neighbours", the query each row came with.
        missing: for "list" (not strict), the tokens that are not in the vocabulary.
        shares: for "stratified", kind → rows taken.
    """

    indices: np.ndarray
    config: SelectionConfig
    total: int
    pool: int
    groups: tuple[str, ...] | None = None
    missing: tuple[str, ...] = ()
    shares: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def sampling(self) -> str:
        return self.config.sampling

    @property
    def description(self) -> str:
        """How the points were chosen, in words ("a random sample of 5,000 of the 30,522 rows (seed 0)")."""
        c = self.config
        n = len(self)
        rows = f"{self.pool:,} rows of kind {', '.join(c.kinds)}" if c.kinds else f"{self.total:,} rows"
        of = f"the {rows}"
        if c.sampling == "first":
            if n == self.pool:
                return f"all {rows}"
            return f"the first {n:,} of {of} (file order)"
        if c.sampling == "random":
            return f"a random sample of {n:,} of {of} (seed {c.seed}, no repeats)"
        if c.sampling == "stratified":
            parts = ", ".join(f"{k} {v:,}" for k, v in self.shares.items() if v)
            return (f"a sample of {n:,} of {of}, stratified by token kind (seed {c.seed}; each kind keeps its "
                    f"share: {parts})")
        if c.sampling == "neighbours":
            qs = ", ".join(repr(q) for q in c.queries if q.strip())
            return f"{n:,} rows: the {c.k} nearest neighbours (cosine) of {qs}, with the queries themselves"
        text = f"a pasted list of {n:,} tokens"
        if self.missing:
            shown = ", ".join(repr(t) for t in self.missing[:5]) + (" …" if len(self.missing) > 5 else "")
            verb = "was" if len(self.missing) == 1 else "were"
            text += f" ({len(self.missing)} not in the vocabulary {verb} left out: {shown})"
        return text


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _pool(m: EmbeddingMatrix, kinds: Sequence[str]) -> np.ndarray:
    if not kinds:
        return np.arange(len(m), dtype=np.int64)
    wanted = set(kinds)
    return np.fromiter((i for i, k in enumerate(m.kinds) if k in wanted), dtype=np.int64)


def _allocate(counts: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` over groups in proportion to ``counts`` (largest remainder: each gets floor or ceil)."""
    total = sum(counts.values())
    quotas = {k: n * c / total for k, c in counts.items()}
    out = {k: math.floor(q) for k, q in quotas.items()}
    left = n - sum(out.values())
    # Ties go to the kind listed first in KINDS, so the split is deterministic.
    order = sorted(counts, key=lambda k: (-(quotas[k] - out[k]), KINDS.index(k) if k in KINDS else 99))
    for k in order[:left]:
        out[k] += 1
    return out


def _cosine_topk(m: EmbeddingMatrix, queries: np.ndarray, k: int,
                 allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows most cosine-similar to each query: one matrix product, then a partial sort.

    The fallback for :func:`_knn` where ``core.search`` is not installed.

    Returns:
        (row ids, similarities), each (queries × k), best first.
    """
    rows = np.arange(len(m)) if allowed is None else allowed
    vecs = m.vectors if allowed is None else m.vectors[allowed]
    norms = m.norms if allowed is None else m.norms[allowed]
    q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    qn = np.linalg.norm(q, axis=1, keepdims=True)
    qn[qn == 0] = 1.0
    k = min(k, vecs.shape[0])
    scores = np.empty((vecs.shape[0], q.shape[0]), dtype=np.float32)
    step = 1 << 16
    for s in range(0, vecs.shape[0], step):
        chunk = np.asarray(vecs[s:s + step], dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores[s:s + step] = (chunk @ (q / qn).T) / norms[s:s + step, None]
    scores[~np.isfinite(scores)] = -np.inf
    ids = np.empty((q.shape[0], k), dtype=np.int64)
    sims = np.empty((q.shape[0], k), dtype=np.float32)
    for j in range(q.shape[0]):
        col = scores[:, j]
        top = np.argpartition(-col, k - 1)[:k] if k < col.shape[0] else np.arange(col.shape[0])
        top = top[np.lexsort((top, -col[top]))]
        ids[j], sims[j] = rows[top], col[top]
    return ids, sims


def _knn(m: EmbeddingMatrix, queries: np.ndarray, k: int,
         allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row ids and cosines of the ``k`` rows nearest each query, among ``allowed`` rows when given.

    Uses the project's one neighbour engine, ``core.search.knn``, and falls back to a plain cosine
    top-k where that module is absent. Fewer than ``k`` candidates leave ids of -1.
    """
    k = max(1, min(k, len(m) if allowed is None else int(allowed.size)))
    try:
        from core.search import knn
    except ImportError:
        return _cosine_topk(m, queries, k, allowed)
    mask = None
    if allowed is not None:
        mask = np.zeros(len(m), dtype=bool)
        mask[allowed] = True
    ids, sims = knn(m, np.atleast_2d(np.asarray(queries, dtype=np.float32)), k, "cosine", mask=mask)
    return np.asarray(ids, dtype=np.int64), np.asarray(sims, dtype=np.float32)


def _resolve_token(m: EmbeddingMatrix, text: str) -> int | None:
    """The row of a pasted token: the exact token, else the one piece the tokenizer makes of it."""
    if text in m:
        return m.get_index(text)
    pieces = m.lookup(text)
    if len(pieces) == 1 and not pieces[0].unknown and 0 <= pieces[0].id < len(m):
        return pieces[0].id
    return None


def select(m: EmbeddingMatrix, config: SelectionConfig) -> Selection:
    """Choose the rows to project.

    Raises:
        ParameterError: a field is out of range (``sample`` larger than the matrix, unknown kind, ...).
        TokenNotFound: a query word (neighbours) or, with ``strict``, a pasted token is not in the vocabulary.
    """
    config.validate(len(m))
    c = config
    pool = _pool(m, c.kinds)
    total = len(m)
    if c.sampling in ("first", "random", "stratified"):
        if pool.size == 0:
            raise ParameterError(f"kinds: no rows of kind {', '.join(c.kinds)} in this matrix")
        n = pool.size if c.sample is None else c.sample
        if n > pool.size:
            raise ParameterError(f"sample={n:,}: only {pool.size:,} rows are of kind {', '.join(c.kinds)}; "
                                 f"choose at most {pool.size:,}")
        rng = np.random.default_rng(c.seed)
        shares: dict[str, int] = {}
        if c.sampling == "first":
            idx = pool[:n].copy()
        elif c.sampling == "random":
            idx = np.sort(rng.choice(pool, size=n, replace=False))
        else:
            kinds = m.kinds
            by_kind: dict[str, list[int]] = {}
            for i in pool.tolist():
                by_kind.setdefault(kinds[i], []).append(i)
            ordered = {k: by_kind[k] for k in sorted(by_kind, key=lambda k: KINDS.index(k) if k in KINDS else 99)}
            shares = _allocate({k: len(v) for k, v in ordered.items()}, n)
            parts = [rng.choice(np.asarray(ordered[k], dtype=np.int64), size=shares[k], replace=False)
                     for k in ordered if shares[k]]
            idx = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
        return Selection(_readonly(idx.astype(np.int64)), c, total, int(pool.size), shares=shares)
    if c.sampling == "neighbours":
        queries = [q.strip() for q in c.queries if q.strip()]
        vecs, own = [], []
        for q in queries:
            vec, pieces = m.text_vector(q, strict=True)
            vecs.append(np.asarray(vec, dtype=np.float32))
            own.append([p.id for p in pieces])
        rows_of, _ = _knn(m, np.stack(vecs), c.k + max(len(o) for o in own), pool if c.kinds else None)
        seen: dict[int, str] = {}
        for q, mine, top in zip(queries, own, rows_of, strict=True):
            for i in mine:
                seen.setdefault(int(i), q)
            added = 0
            for i in top.tolist():
                if added >= c.k:
                    break
                if i < 0 or i in mine:
                    continue
                seen.setdefault(int(i), q)
                added += 1
        idx = np.fromiter(seen, dtype=np.int64, count=len(seen))
        return Selection(_readonly(idx), c, total, int(pool.size), groups=tuple(seen.values()))
    # a pasted list
    order: dict[int, None] = {}
    missing: list[str] = []
    allowed_set = set(pool.tolist()) if c.kinds else None
    for t in (t.strip() for t in c.tokens):
        if not t:
            continue
        i = _resolve_token(m, t)
        if i is None:
            if c.strict:
                raise TokenNotFound(t, m.suggest(t), detail="in the pasted list")
            missing.append(t)
        elif allowed_set is None or i in allowed_set:
            order.setdefault(i, None)
    if not order:
        raise ParameterError("tokens: none of the pasted tokens is in the vocabulary"
                             + (f" (first missing: {missing[0]!r})" if missing else ""))
    idx = np.fromiter(order, dtype=np.int64, count=len(order))
    return Selection(_readonly(idx), c, total, int(pool.size), missing=tuple(missing))


# -- how to project -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProjectionConfig:
    """How to project the selected rows.

    Attributes:
        method: "pca", "tsne" (openTSNE), "umap" (umap-learn) or "axes" (custom semantic axes).
        dims: 2 or 3.
        seed: random seed (PCA's randomized solver, t-SNE, UMAP).
        perplexity: t-SNE's effective number of neighbours; needs 3 × perplexity ≤ points − 1.
        n_neighbors: UMAP's neighbourhood size (2 .. points − 1).
        min_dist: UMAP's minimum distance between embedded points (0 .. 1).
        metric: distance for t-SNE and UMAP: cosine, euclidean or manhattan.
        pre_pca: dimensions PCA keeps before t-SNE and UMAP (skipped when the matrix is narrower).
        axis_x: (A, B): x is the cosine of each row with the direction B − A ("axes").
        axis_y: (C, D) for y the same way; None puts the first principal component of what x leaves on y.
        n_jobs: threads for t-SNE (-1: every core). UMAP with a seed runs on one thread to stay reproducible.
    """

    method: str = "pca"
    dims: int = 2
    seed: int = 0
    perplexity: float = 30.0
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    pre_pca: int = 50
    axis_x: tuple[str, str] | None = None
    axis_y: tuple[str, str] | None = None
    n_jobs: int = -1

    def validate(self, points: int, dim: int) -> None:
        """Check the config against ``points`` selected rows of ``dim`` dimensions.

        Raises:
            ParameterError: naming the field and the rule.
        """
        if self.method not in METHODS:
            raise ParameterError(f"method={self.method!r}: must be one of {', '.join(METHODS)}")
        if self.dims not in (2, 3):
            raise ParameterError(f"dims={self.dims}: must be 2 or 3")
        if points < 3:
            raise ParameterError(f"sample: {points} point(s) selected; a projection needs at least 3")
        if self.method == "pca" and dim < self.dims:
            raise ParameterError(f"dims={self.dims}: the matrix has only {dim} dimensions")
        if self.method in ("tsne", "umap"):
            if self.metric not in METRICS:
                raise ParameterError(f"metric={self.metric!r}: must be one of {', '.join(METRICS)}")
            if self.pre_pca < self.dims:
                raise ParameterError(f"pre_pca={self.pre_pca}: must be at least dims ({self.dims})")
        if self.method == "tsne":
            most = (points - 1) / 3
            if not self.perplexity > 0:
                raise ParameterError(f"perplexity={self.perplexity}: must be greater than 0")
            if self.perplexity > most:
                raise ParameterError(
                    f"perplexity={self.perplexity:g}: too large for {points:,} points; t-SNE needs 3 × perplexity "
                    f"≤ points − 1, so at most {most:.1f} here. Lower the perplexity or select more points")
        if self.method == "umap":
            if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)):
                raise ParameterError(f"n_neighbors={self.n_neighbors!r}: must be a whole number")
            if self.n_neighbors < 2:
                raise ParameterError(f"n_neighbors={self.n_neighbors}: must be at least 2")
            if self.n_neighbors >= points:
                raise ParameterError(f"n_neighbors={self.n_neighbors}: must be smaller than the number of points "
                                     f"({points:,}); lower it or select more points")
            if not 0.0 <= self.min_dist <= 1.0:
                raise ParameterError(f"min_dist={self.min_dist}: must be between 0 and 1 (UMAP's spread)")
        if self.method == "axes":
            if self.axis_x is None:
                raise ParameterError("axis_x: custom axes need two words for x, from A to B")
            for name, pair in (("axis_x", self.axis_x), ("axis_y", self.axis_y)):
                if pair is None:
                    continue
                if len(pair) != 2 or not all(isinstance(w, str) and w.strip() for w in pair):
                    raise ParameterError(f"{name}={pair!r}: needs two words, from and to")
                if pair[0].strip() == pair[1].strip():
                    raise ParameterError(f"{name}: {pair[0]!r} → {pair[1]!r} is no direction; choose two "
                                         "different words")
            if self.dims == 3 and dim < 3:
                raise ParameterError(f"dims=3: the matrix has only {dim} dimensions")


@dataclass(frozen=True, eq=False)
class Projection:
    """Coordinates of the selected rows, with what is needed to caption and colour them.

    Attributes:
        coords: (points × dims) float32, read-only; row i belongs to ``selection.indices[i]``.
        selection: which rows, and how they were chosen.
        config: how they were projected.
        axis_titles: one title per output dimension.
        explained_variance: PCA only: the share of variance of the first (up to 10) components.
        pre_pca_variance: t-SNE/UMAP: the share of variance kept by the PCA run first (None if skipped).
        pre_pca_dims: t-SNE/UMAP: the dimensions that PCA kept (None if skipped).
        seconds: wall time of the projection.
        notes: what the user should know (threads, fallbacks).
    """

    coords: np.ndarray
    selection: Selection
    config: ProjectionConfig
    axis_titles: tuple[str, ...]
    explained_variance: np.ndarray | None = None
    pre_pca_variance: float | None = None
    pre_pca_dims: int | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def dims(self) -> int:
        return int(self.coords.shape[1])

    @property
    def caption(self) -> str:
        """What is shown, how many points and how they were chosen, in one paragraph."""
        c = self.config
        head = f"{METHOD_NAMES[c.method]} ({self.dims}-D) of {self.selection.description}."
        extra = []
        if self.explained_variance is not None:
            shown = float(np.sum(self.explained_variance[: self.dims]))
            extra.append(f"The {self.dims} components shown explain {shown:.1%} of the variance.")
        if c.method in ("tsne", "umap"):
            params = (f"perplexity {c.perplexity:g}" if c.method == "tsne"
                      else f"n_neighbors {c.n_neighbors}, min_dist {c.min_dist:g}")
            pre = (f"PCA to {self.pre_pca_dims} dimensions first (keeping "
                   f"{self.pre_pca_variance:.0%} of the variance), then " if self.pre_pca_variance is not None
                   else "")
            extra.append(f"{pre}{METHOD_NAMES[c.method]} with {params}, {c.metric} distance, seed {c.seed}.")
        if c.method == "axes":
            extra.append("Axes: " + "; ".join(f"{'xyz'[i]} = {t}" for i, t in enumerate(self.axis_titles)) + ".")
        return " ".join([head, *extra])

    def frame(self, m: EmbeddingMatrix, colouring: Colouring | None = None,
              metadata: bool = True) -> pd.DataFrame:
        """One row per point: token, id, kind, x, y[, z], the colour column, and any extra metadata."""
        import pandas as pd

        idx = self.selection.indices
        kinds = m.kinds
        df = pd.DataFrame({"token": [m.index_to_key[i] for i in idx], "id": idx,
                           "kind": [kinds[i] for i in idx]})
        for j, name in enumerate("xyz"[: self.dims]):
            df[name] = self.coords[:, j]
        if colouring is not None:
            df["colour"] = list(colouring.values)
        extra = _extra_columns(m)
        if metadata and extra:
            meta = m.metadata.iloc[idx]
            for col in extra:
                if col not in df.columns:
                    df[col] = meta[col].to_numpy()
        return df


def _extra_columns(m: EmbeddingMatrix) -> list[str]:
    """The file's own metadata columns, as named in ``m.metadata`` (after id, token, kind)."""
    if not m.metadata_columns:
        return []
    return [c for c in m.metadata.columns if c not in ("id", "token", "kind")]


def _rows(m: EmbeddingMatrix, selection: Selection) -> np.ndarray:
    """The selected rows as float32; the matrix itself (no copy) when every row is selected in order."""
    idx = selection.indices
    if idx.shape[0] == len(m) and (idx.shape[0] == 0 or (idx[0] == 0 and np.all(np.diff(idx) == 1))):
        return np.asarray(m.vectors)
    return np.asarray(m.vectors[idx], dtype=np.float32)


#: Up to this many dimensions PCA eigen-decomposes the covariance (exact, and fast for any row count);
#: wider matrices use scikit-learn's randomized SVD.
_EXACT_PCA_DIMS = 2048


def _pca(x: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    # scikit-learn's "auto" picks a randomized (approximate) solver for e.g. 3,000 × 384; the covariance route
    # is exact and costs one d × d product, so use it wherever d is modest.
    solver = "covariance_eigh" if x.shape[1] <= _EXACT_PCA_DIMS and x.shape[0] > 1 else "auto"
    pca = PCA(n_components=n, random_state=seed, svd_solver=solver)
    coords = pca.fit_transform(x)
    return np.asarray(coords, dtype=np.float32), np.asarray(pca.explained_variance_ratio_, dtype=np.float64)


def _reduce(x: np.ndarray, c: ProjectionConfig) -> tuple[np.ndarray, float | None]:
    n = min(c.pre_pca, x.shape[0], x.shape[1])
    if n >= x.shape[1]:
        return np.asarray(x, dtype=np.float32), None
    z, ratio = _pca(x, n, c.seed)
    return z, float(ratio.sum())


def _tsne(z: np.ndarray, c: ProjectionConfig, report: Reporter) -> tuple[np.ndarray, list[str]]:
    import openTSNE

    n = z.shape[0]
    every = 25
    early, main = 250, 500
    total_calls = (early + main) // every
    calls = [0]

    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        calls[0] += 1
        report(0.25 + 0.75 * min(calls[0] / total_calls, 1.0), f"t-SNE: {calls[0] * every} of {early + main} "
               "iterations")
        return False

    # 3-D needs Barnes-Hut (the FFT method is for 1-D and 2-D); exact neighbours are faster on small sets,
    # and annoy avoids pynndescent's long first-call compile.
    tsne = openTSNE.TSNE(
        n_components=c.dims, perplexity=c.perplexity, metric=c.metric, random_state=c.seed, n_jobs=c.n_jobs,
        neighbors="exact" if n < 1000 else "annoy",
        negative_gradient_method="bh" if c.dims == 3 else "auto",
        early_exaggeration_iter=early, n_iter=main, callbacks=callback, callbacks_every_iters=every,
    )
    report(0.1, "t-SNE: nearest neighbours and affinities")
    emb = tsne.fit(np.asarray(z, dtype=np.float64))
    notes = ["t-SNE distances between clusters are not meaningful; only neighbourhoods are"]
    return np.asarray(emb, dtype=np.float32), notes


#: UMAP finds neighbours exactly (one blocked matrix product) between these sizes: below, it does so itself;
#: above, pynndescent's approximate search is cheaper than n² distances.
_EXACT_KNN = (4096, 50_000)


def _umap(z: np.ndarray, c: ProjectionConfig, report: Reporter) -> tuple[np.ndarray, list[str]]:
    import umap

    n = z.shape[0]
    knn: tuple[np.ndarray, np.ndarray] | None = None
    if _EXACT_KNN[0] <= n <= _EXACT_KNN[1]:
        from sklearn.neighbors import NearestNeighbors

        # Exact neighbours by brute force beat pynndescent here: seconds instead of its compile and search.
        report(0.15, f"UMAP: the {c.n_neighbors} nearest neighbours of each of {n:,} points")
        nn = NearestNeighbors(n_neighbors=c.n_neighbors, metric=c.metric, algorithm="brute", n_jobs=c.n_jobs)
        dist, idx = nn.fit(z).kneighbors(z)
        knn = (np.ascontiguousarray(idx, dtype=np.int32), np.ascontiguousarray(dist, dtype=np.float32))
    report(0.3, "UMAP: fuzzy graph and layout (UMAP reports no progress inside; it stops only between steps)")
    reducer = umap.UMAP(n_components=c.dims, n_neighbors=c.n_neighbors, min_dist=c.min_dist, metric=c.metric,
                        random_state=c.seed, n_jobs=1, precomputed_knn=knn if knn is not None else (None, None, None))
    with warnings.catch_warnings():
        # umap warns that a seed forces one thread, that a precomputed graph has no search index (we never
        # call transform), and about spectral fallbacks on tiny sets.
        warnings.simplefilter("ignore")
        emb = reducer.fit_transform(np.asarray(z, dtype=np.float32))
    notes = ["UMAP lays points out on one thread so that the seed reproduces the layout"]
    if knn is not None:
        notes.append("neighbours were found exactly (brute force), not approximately")
    return np.asarray(emb, dtype=np.float32), notes


def _axis(m: EmbeddingMatrix, pair: tuple[str, str], name: str) -> tuple[np.ndarray, str]:
    a, b = (w.strip() for w in pair)
    va, _ = m.text_vector(a, strict=True)
    vb, _ = m.text_vector(b, strict=True)
    d = np.asarray(vb, dtype=np.float64) - np.asarray(va, dtype=np.float64)
    size = float(np.linalg.norm(d))
    if not np.isfinite(size) or size == 0.0:
        raise ParameterError(f"{name}: {a!r} and {b!r} have the same vector, so there is no direction; "
                             "choose two different words")
    return d / size, f"cos(·, {b} − {a})"


def _axes(m: EmbeddingMatrix, x: np.ndarray, rows: np.ndarray, c: ProjectionConfig,
          report: Reporter) -> tuple[np.ndarray, tuple[str, ...]]:
    assert c.axis_x is not None
    dirs = [_axis(m, c.axis_x, "axis_x")]
    if c.axis_y is not None:
        dirs.append(_axis(m, c.axis_y, "axis_y"))
    report(0.3, "custom axes: cosine with each direction")
    norms = np.asarray(m.norms[rows], dtype=np.float64)
    norms[norms == 0] = np.inf
    cols = [(np.asarray(x @ d.astype(np.float32), dtype=np.float64) / norms) for d, _ in dirs]
    titles = [t for _, t in dirs]
    rest = c.dims - len(cols)
    if rest > 0:
        # PCA of what the given directions leave: project them out (Gram-Schmidt) first.
        basis: list[np.ndarray] = []
        for d, _ in dirs:
            v = d - sum((d @ b) * b for b in basis) if basis else d
            nv = float(np.linalg.norm(v))
            if nv > 1e-9:
                basis.append(v / nv)
        resid = np.asarray(x, dtype=np.float32).copy()
        for b in basis:
            b32 = b.astype(np.float32)
            resid -= np.outer(resid @ b32, b32)
        report(0.6, "custom axes: PCA of the rest")
        pcs, _ = _pca(resid, rest, c.seed)
        cols.extend(pcs[:, j].astype(np.float64) for j in range(rest))
        what = "x" if len(dirs) == 1 else "x and y"
        titles.extend(f"PC{j + 1} of what {what} leave{'s' if len(dirs) == 1 else ''}" for j in range(rest))
    return np.stack(cols, axis=1).astype(np.float32), tuple(titles)


def project(m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig, *,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Projection:
    """Project the selected rows to 2-D or 3-D.

    Args:
        m: the matrix.
        selection: from :func:`select`.
        config: method and parameters; validated before any work starts.
        progress, cancel: see :mod:`core.progress`.

    Raises:
        ParameterError: a config field is out of range for this selection (named in the message).
        TokenNotFound: a custom-axis word is not in the vocabulary.
        Cancelled: the cancel check said stop.
    """
    c = config
    c.validate(len(selection), m.dim)
    report = Reporter(progress, cancel)
    if c.method == "axes":  # look the words up before any work, so a typo fails at once
        assert c.axis_x is not None
        for pair in (c.axis_x, c.axis_y):
            for w in pair or ():
                m.text_vector(w.strip(), strict=True)
    t0 = time.perf_counter()
    report(0.0, f"{METHOD_NAMES[c.method]}: reading {len(selection):,} rows")
    x = _rows(m, selection)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:  # PCA, t-SNE and UMAP all fail on them with a library's error that names no row
        first = int(selection.indices[bad[0]])
        raise FormatError(f"{m.provenance.path or 'the matrix'}: {bad.size:,} of the {len(selection):,} selected rows "
                          f"hold NaN or infinite values (the first: row {first}, token "
                          f"{m.index_to_key[first]!r}); a projection needs finite vectors, so fix those rows in "
                          "the source file")
    notes: list[str] = []
    explained: np.ndarray | None = None
    pre: float | None = None
    pre_dims: int | None = None
    if c.method == "pca":
        report(0.1, "PCA")
        n = min(max(c.dims, 10), x.shape[0], x.shape[1])
        coords, explained = _pca(x, n, c.seed)
        coords = coords[:, : c.dims]
        titles: tuple[str, ...] = tuple(f"PC{j + 1} ({explained[j]:.1%})" for j in range(c.dims))
    elif c.method == "axes":
        coords, titles = _axes(m, x, selection.indices, c, report)
    else:
        report(0.02, f"PCA to {min(c.pre_pca, x.shape[1])} dimensions")
        z, pre = _reduce(x, c)
        pre_dims = z.shape[1] if pre is not None else None
        report(0.1, f"{METHOD_NAMES[c.method]} on {z.shape[0]:,} points")
        coords, more = (_tsne if c.method == "tsne" else _umap)(z, c, report)
        notes.extend(more)
        titles = tuple(f"{METHOD_NAMES[c.method]} {j + 1}" for j in range(c.dims))
    coords = np.ascontiguousarray(coords, dtype=np.float32)
    report(1.0, "done")
    if explained is not None:
        explained.setflags(write=False)
    return Projection(_readonly(coords), selection, c, titles, explained, pre,
                      pre_dims, time.perf_counter() - t0, tuple(notes))


# -- colour, search, density ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Colouring:
    """One colour category per selected point.

    Attributes:
        by: what was asked ("kind", "frequency", "query", or a metadata column).
        title: the legend title.
        values: one category per point, in selection order.
        order: the categories in legend order.
    """

    by: str
    title: str
    values: tuple[str, ...]
    order: tuple[str, ...]


def colour_options(m: EmbeddingMatrix, selection: Selection | None = None) -> list[str]:
    """What points can be coloured by here: kind, word frequency, query (neighbourhoods), metadata columns."""
    out = ["kind", "frequency"]
    if selection is not None and selection.groups is not None:
        out.append("query")
    out.extend(c for c in _extra_columns(m) if c not in out)
    return out


def _zipf_bucket(z: float) -> str:
    if z <= 0:
        return FREQUENCY_BUCKETS[5]
    if z >= 6:
        return FREQUENCY_BUCKETS[0]
    if z >= 5:
        return FREQUENCY_BUCKETS[1]
    if z >= 4:
        return FREQUENCY_BUCKETS[2]
    if z >= 3:
        return FREQUENCY_BUCKETS[3]
    return FREQUENCY_BUCKETS[4]


def frequency_buckets(m: EmbeddingMatrix, rows: Sequence[int] | np.ndarray, lang: str = "en") -> list[str]:
    """The word-frequency bucket (wordfreq's Zipf scale) of each row; subwords and symbols are "not a word".

    Raises:
        ParameterError: ``lang`` is not a language wordfreq knows.
    """
    import wordfreq

    if lang not in wordfreq.available_languages():
        raise ParameterError(f"lang={lang!r}: wordfreq has no list for it; choose one of "
                             f"{', '.join(sorted(wordfreq.available_languages()))}")
    kinds = m.kinds
    scheme = m.tokenizer.scheme
    out = []
    for i in np.asarray(rows).tolist():
        if kinds[i] != "word":
            out.append(FREQUENCY_BUCKETS[6])
            continue
        # wordfreq's own lookup: it casefolds, folds digits and splits the way its lists were counted.
        word = strip_marker(m.index_to_key[i], scheme)[0]
        out.append(_zipf_bucket(wordfreq.zipf_frequency(word, lang)))
    return out


def colour(m: EmbeddingMatrix, selection: Selection, by: str = "kind", lang: str = "en") -> Colouring:
    """Colour categories for the selected points.

    Args:
        by: "kind", "frequency" (word-frequency bucket via wordfreq), "query" (the neighbourhood a point
            came with) or a metadata column.
        lang: wordfreq language for "frequency".

    Raises:
        ParameterError: ``by`` is none of these.
    """
    idx = selection.indices
    if by == "kind":
        kinds = m.kinds
        vals = [kinds[i] for i in idx]
        return Colouring(by, "token kind", tuple(vals), tuple(k for k in KINDS if k in set(vals)))
    if by == "frequency":
        vals = frequency_buckets(m, idx, lang)
        return Colouring(by, f"word frequency ({lang})", tuple(vals),
                         tuple(b for b in FREQUENCY_BUCKETS if b in set(vals)))
    if by == "query":
        if selection.groups is None:
            raise ParameterError("colour='query' needs a neighbourhood selection (sampling='neighbours')")
        return Colouring(by, "neighbour of", selection.groups, tuple(dict.fromkeys(selection.groups)))
    if by in _extra_columns(m):
        col = m.metadata[by].iloc[idx].astype(str).tolist()
        counts: dict[str, int] = {}
        for v in col:
            counts[v] = counts.get(v, 0) + 1
        return Colouring(by, by, tuple(col), tuple(sorted(counts, key=lambda v: -counts[v])))
    raise ParameterError(f"colour={by!r}: choose one of {', '.join(colour_options(m, selection))}")


@dataclass(frozen=True)
class Neighbourhood:
    """A searched label and its nearest neighbours among the projected points."""

    query: str
    row: int
    in_selection: bool
    positions: tuple[int, ...]  # into the selection, nearest first (the query itself excluded)
    similarities: tuple[float, ...]


def search(m: EmbeddingMatrix, projection: Projection, label: str, k: int = 10) -> Neighbourhood:
    """Find ``label`` and its ``k`` nearest neighbours (cosine, in the original space) among the points.

    Raises:
        TokenNotFound: the label is not a token of the matrix (with suggestions).
        ParameterError: ``k`` is below 1.
    """
    if k < 1:
        raise ParameterError(f"k={k}: must be at least 1")
    text = label.strip()
    row = _resolve_token(m, text)
    if row is None:
        raise TokenNotFound(text, m.suggest(text))
    idx = projection.selection.indices
    where = np.flatnonzero(idx == row)
    ids, sims = _knn(m, np.asarray(m.vectors[row])[None, :], k + 1, idx)
    where_of = {int(r): p for p, r in enumerate(idx.tolist())}
    keep = [(where_of[int(i)], float(s)) for i, s in zip(ids[0], sims[0], strict=True)
            if int(i) >= 0 and int(i) != row][:k]
    return Neighbourhood(text, row, bool(where.size), tuple(p for p, _ in keep), tuple(s for _, s in keep))


def highlight_column(n: int, hood: Neighbourhood | None, projection: Projection) -> list[str]:
    """A per-point column: "match" for the searched label, "neighbour" for its neighbours, "" otherwise."""
    out = [""] * n
    if hood is None:
        return out
    for p in hood.positions:
        out[p] = "neighbour"
    if hood.in_selection:
        out[int(np.flatnonzero(projection.selection.indices == hood.row)[0])] = "match"
    return out


def density(coords: np.ndarray, bins: int = 60) -> pd.DataFrame:
    """Counts of points in a ``bins`` × ``bins`` grid over the first two coordinates (empty cells left out).

    Returns:
        columns x, x2, y, y2 (cell edges) and count; at most ``bins²`` rows, so any size stays chartable.
    """
    import pandas as pd

    if bins < 2:
        raise ParameterError(f"bins={bins}: must be at least 2")
    xy = np.asarray(coords[:, :2], dtype=np.float64)
    ok = np.all(np.isfinite(xy), axis=1)
    counts, xe, ye = np.histogram2d(xy[ok, 0], xy[ok, 1], bins=bins)
    ix, iy = np.nonzero(counts)
    return pd.DataFrame({"x": xe[ix], "x2": xe[ix + 1], "y": ye[iy], "y2": ye[iy + 1],
                         "count": counts[ix, iy].astype(np.int64)})


def points_in_box(frame: pd.DataFrame, x: Sequence[float], y: Sequence[float]) -> pd.DataFrame:
    """The rows of a projection frame whose x and y fall in the given ranges (a brushed box)."""
    x0, x1 = sorted(float(v) for v in x)
    y0, y1 = sorted(float(v) for v in y)
    inside = frame["x"].between(x0, x1) & frame["y"].between(y0, y1)
    return frame.loc[inside]


__all__ = [
    "BROWSER_MAX_POINTS",
    "FREQUENCY_BUCKETS",
    "METHODS",
    "METHOD_NAMES",
    "METRICS",
    "SAMPLINGS",
    "Colouring",
    "Neighbourhood",
    "Projection",
    "ProjectionConfig",
    "Selection",
    "SelectionConfig",
    "colour",
    "colour_options",
    "density",
    "frequency_buckets",
    "highlight_column",
    "points_in_box",
    "project",
    "search",
    "select",
]
