"""Which rows a projection shows: the first N, a seeded random or stratified sample, neighbourhoods of query
words, or a pasted list, with a description a caption can quote."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.tokens import KINDS

#: How points are chosen.
Sampling = Literal["first", "random", "stratified", "neighbours", "list"]
SAMPLINGS: tuple[Sampling, ...] = get_args(Sampling)

_NEIGHBORS_CAP = 1000


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
            if not 1 <= self.k <= _NEIGHBORS_CAP:
                raise ParameterError(f"k={self.k}: neighbours per query must be between 1 and {_NEIGHBORS_CAP}")
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


def _knn(m: EmbeddingMatrix, queries: np.ndarray, k: int,
         allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row ids and cosines of the ``k`` rows nearest each query, among ``allowed`` rows when given.

    Uses the project's one neighbour engine. Fewer than ``k`` candidates leave ids of -1.
    """
    from core.search import knn

    k = max(1, min(k, len(m) if allowed is None else int(allowed.size)))
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
