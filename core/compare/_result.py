"""What a comparison measured: :class:`Comparison` (per-token arrays, the moved-most table), its
:class:`Summary`, and one token in detail (:class:`TokenDetail`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from core.compare._align import VocabularyMatch
from core.compare._common import _readonly
from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix

if TYPE_CHECKING:
    import pandas as pd

#: Orders of the moved-most table.
SortKey = Literal["drift", "jaccard", "norm_change", "token"]
SORTS: tuple[SortKey, ...] = get_args(SortKey)


@dataclass(frozen=True)
class Summary:
    """The headline numbers of a comparison (drift figures are None when the spaces were not comparable).

    Attributes:
        changed_share: share of compared tokens whose k nearest neighbours differ (Jaccard < 1).
        mean_norm_change: mean of |b| − |a|; mean_abs_relative_norm_change: mean of | |b| / |a| − 1 |.
    """

    shared: int
    only_a: int
    only_b: int
    compared: int
    k: int
    aligned: bool
    alignment: str
    mean_drift: float | None
    median_drift: float | None
    p90_drift: float | None
    p99_drift: float | None
    max_drift: float | None
    changed_share: float
    median_jaccard: float
    mean_jaccard: float
    mean_norm_a: float
    mean_norm_b: float
    mean_norm_change: float
    mean_abs_relative_norm_change: float

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Comparison:
    """Everything :func:`compare` measured. Per-token arrays follow ``tokens`` (the compared tokens).

    Attributes:
        label_a, label_b: where A and B came from (their paths, or "derived").
        fingerprint_a, fingerprint_b, dim_a, dim_b: content digests and widths.
        vocab: the whole vocabulary match (shared, only-A, only-B).
        tokens, rows_a, rows_b: the compared tokens (every shared token unless ``tokens``/``limit`` chose
            fewer) and their rows in A and in B.
        k: neighbours per token for Jaccard@k.
        aligned: whether A was rotated onto B; alignment: which rotation, or why none, in words.
        anchors: tokens the rotation was fitted on (0 when not aligned).
        rotation: the (dim × dim) orthogonal matrix R with a·R ≈ b, or None.
        drift: 1 − cosine(a·R, b) per token (float64), or None when the dimensions differ.
        jaccard: Jaccard@k per token (float64).
        neighbors_a, neighbors_b: (tokens × k) positions into ``tokens`` (int32; -1 pads) of each token's
            nearest neighbours in A and in B, best first; scores_a, scores_b: their cosines.
        norm_a, norm_b: row norms (float32).
        notes: what the user should know (tokens left out, an under-determined rotation, ...).
        search: "exact", or "approximate" where the neighbours came from NN-descent (a note says so).
        seconds: wall time.
    """

    label_a: str
    label_b: str
    fingerprint_a: str
    fingerprint_b: str
    dim_a: int
    dim_b: int
    vocab: VocabularyMatch
    tokens: tuple[str, ...]
    rows_a: np.ndarray
    rows_b: np.ndarray
    k: int
    aligned: bool
    alignment: str
    anchors: int
    rotation: np.ndarray | None
    drift: np.ndarray | None
    jaccard: np.ndarray
    neighbors_a: np.ndarray
    scores_a: np.ndarray
    neighbors_b: np.ndarray
    scores_b: np.ndarray
    norm_a: np.ndarray
    norm_b: np.ndarray
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    _positions: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    search: str = "exact"

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def shared(self) -> int:
        return self.vocab.shared

    @property
    def only_a(self) -> int:
        return len(self.vocab.only_a)

    @property
    def only_b(self) -> int:
        return len(self.vocab.only_b)

    @property
    def compared(self) -> int:
        return len(self.tokens)

    @property
    def identical(self) -> bool:
        """True when A and B have the same content fingerprint (the same tokens and vectors)."""
        return self.fingerprint_a == self.fingerprint_b

    @property
    def has_drift(self) -> bool:
        """False when A and B have different dimensions (compared by neighbourhoods only)."""
        return self.drift is not None

    @property
    def norm_change(self) -> np.ndarray:
        """|b| − |a| per token."""
        return self.norm_b.astype(np.float64) - self.norm_a.astype(np.float64)

    # -- numbers --------------------------------------------------------------------------------
    def summary(self) -> Summary:
        """Mean and percentiles of drift, share of changed neighbourhoods, median Jaccard, norm change."""
        d = self.drift
        stats: list[float | None] = [None] * 5
        if d is not None and d.size:
            p50, p90, p99 = np.nanpercentile(d, [50, 90, 99])
            stats = [float(np.nanmean(d)), float(p50), float(p90), float(p99), float(np.nanmax(d))]
        na, nb = self.norm_a.astype(np.float64), self.norm_b.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(na > 0, np.abs(nb / np.where(na > 0, na, 1.0) - 1.0), np.where(nb > 0, np.inf, 0.0))
        finite = rel[np.isfinite(rel)]
        return Summary(
            shared=self.shared, only_a=self.only_a, only_b=self.only_b, compared=self.compared, k=self.k,
            aligned=self.aligned, alignment=self.alignment, mean_drift=stats[0], median_drift=stats[1],
            p90_drift=stats[2], p99_drift=stats[3], max_drift=stats[4],
            changed_share=float(np.mean(self.jaccard < 1.0)), median_jaccard=float(np.median(self.jaccard)),
            mean_jaccard=float(self.jaccard.mean()), mean_norm_a=float(na.mean()), mean_norm_b=float(nb.mean()),
            mean_norm_change=float((nb - na).mean()),
            mean_abs_relative_norm_change=float(finite.mean()) if finite.size else 0.0)

    # -- the moved-most table ---------------------------------------------------------------------
    def order(self, sort: SortKey = "drift", descending: bool | None = None) -> np.ndarray:
        """Positions of the compared tokens, most moved first.

        Args:
            sort: "drift" (largest first; falls back to "jaccard" when there is no drift), "jaccard"
                (smallest first), "norm_change" (largest |change| first) or "token" (alphabetical).
            descending: reverse the natural order with False/True (None keeps it).

        Raises:
            ParameterError: an unknown sort.
        """
        if sort not in SORTS:
            raise ParameterError(f"sort={sort!r}: must be one of {', '.join(SORTS)}")
        n = self.compared
        pos = np.arange(n)
        if sort == "drift" and self.drift is None:
            sort = "jaccard"
        # lexsort: last key first; ties fall to the next key, then to A's row order.
        if sort == "drift":
            assert self.drift is not None
            keys: tuple[np.ndarray, ...] = (pos, self.jaccard, -self.drift)
            natural_desc = True
        elif sort == "jaccard":
            second = -self.drift if self.drift is not None else -np.abs(self.norm_change)
            keys = (pos, second, self.jaccard)
            natural_desc = False
        elif sort == "norm_change":
            keys = (pos, -np.abs(self.norm_change))
            natural_desc = True
        else:
            keys = ()
            natural_desc = False
        idx = np.lexsort(keys) if keys else np.asarray(sorted(range(n), key=self.tokens.__getitem__), dtype=np.int64)
        if descending is not None and descending != natural_desc:
            idx = idx[::-1]
        return np.asarray(idx, dtype=np.int64)

    def _select(self, sort: SortKey, descending: bool | None, contains: str, rows_a: np.ndarray | None,
                top: int | None) -> np.ndarray:
        idx = self.order(sort, descending)
        keep = np.ones(self.compared, dtype=bool)
        if contains.strip():
            needle = contains.strip().casefold()
            keep &= np.fromiter((needle in t.casefold() for t in self.tokens), dtype=bool, count=self.compared)
        if rows_a is not None:
            keep &= np.isin(self.rows_a, np.asarray(rows_a, dtype=np.int64))
        idx = idx[keep[idx]]
        if top is not None:
            if top < 0:
                raise ParameterError(f"top={top}: must be 0 or more")
            idx = idx[:top]
        return idx

    def neighbor_tokens(self, pos: int, side: str = "a") -> list[str]:
        """The k nearest neighbours of the token at ``pos`` in A (``side="a"``) or B, best first."""
        ids = self.neighbors_a[pos] if side == "a" else self.neighbors_b[pos]
        return [self.tokens[i] for i in ids.tolist() if i >= 0]

    def table(self, sort: SortKey = "drift", top: int | None = 100, *, contains: str = "",
              rows_a: np.ndarray | Sequence[int] | None = None, descending: bool | None = None) -> pd.DataFrame:
        """The moved-most table: token, drift, jaccard, norms, neighbours in A and in B (joined by ", ").

        Args:
            sort, descending: see :meth:`order`.
            top: rows kept after sorting and filtering (None: all).
            contains: keep tokens containing this text (case-insensitive).
            rows_a: keep tokens whose row in A is one of these (e.g. :func:`corpus_rows`: tokens of a corpus).
        """
        import pandas as pd

        idx = self._select(sort, descending, contains, None if rows_a is None else np.asarray(rows_a), top)
        d = self.drift
        return pd.DataFrame({
            "token": [self.tokens[i] for i in idx.tolist()],
            "drift": d[idx] if d is not None else np.full(idx.size, np.nan),
            "jaccard": self.jaccard[idx],
            "norm_a": self.norm_a[idx], "norm_b": self.norm_b[idx], "norm_change": self.norm_change[idx],
            "neighbors_a": [", ".join(self.neighbor_tokens(i, "a")) for i in idx.tolist()],
            "neighbors_b": [", ".join(self.neighbor_tokens(i, "b")) for i in idx.tolist()],
            "row_a": self.rows_a[idx], "row_b": self.rows_b[idx],
        })

    def moved(self, top: int = 50, sort: SortKey = "drift", *, contains: str = "",
              rows_a: np.ndarray | Sequence[int] | None = None) -> list[dict[str, Any]]:
        """The moved-most rows as JSON: token, drift (None without drift), jaccard, neighbors_a, neighbors_b."""
        idx = self._select(sort, None, contains, None if rows_a is None else np.asarray(rows_a), top)
        d = self.drift
        return [{"token": self.tokens[i], "drift": None if d is None else float(d[i]),
                 "jaccard": float(self.jaccard[i]), "neighbors_a": self.neighbor_tokens(i, "a"),
                 "neighbors_b": self.neighbor_tokens(i, "b")} for i in idx.tolist()]

    def to_json(self, top: int = 50, examples: int = 20) -> dict[str, Any]:
        """The CLI's ``compare --json`` shape: shared, only_a, only_b, aligned, mean_drift, median_jaccard,
        moved (plus k, alignment, summary, examples of the unshared tokens, notes)."""
        s = self.summary()
        return {"shared": self.shared, "only_a": self.only_a, "only_b": self.only_b, "aligned": self.aligned,
                "mean_drift": s.mean_drift, "median_jaccard": s.median_jaccard, "moved": self.moved(top),
                "k": self.k, "compared": self.compared, "alignment": self.alignment, "a": self.label_a,
                "b": self.label_b, "dim_a": self.dim_a, "dim_b": self.dim_b, "summary": s.to_json(),
                "only_a_examples": list(self.vocab.only_a[:examples]),
                "only_b_examples": list(self.vocab.only_b[:examples]), "notes": list(self.notes),
                "identical": self.identical, "search": self.search,
                "seconds": round(self.seconds, 3)}

    def position(self, token: str) -> int:
        """Where ``token`` is among the compared tokens.

        Raises:
            TokenNotFound: it is not compared (with close compared tokens, and why when it is one-sided).
        """
        if not self._positions:
            self._positions.update({t: i for i, t in enumerate(self.tokens)})
        pos = self._positions.get(token)
        if pos is not None:
            return pos
        detail = ""
        if token in self.vocab.only_a:
            detail = "only A has it"
        elif token in self.vocab.only_b:
            detail = "only B has it"
        elif token in set(self.vocab.tokens):
            detail = "it is shared but was not among the compared tokens"
        import difflib

        close = difflib.get_close_matches(token, list(self._positions), n=5, cutoff=0.6)
        raise TokenNotFound(token, close, detail=detail or "it is not among the compared tokens")



@dataclass(frozen=True, eq=False)
class TokenDetail:
    """One token before and after.

    Attributes:
        neighbors_a, neighbors_b: (token, cosine) of its k nearest compared tokens in A and in B.
        common: neighbours in both lists.
        difference: b − a·R (read-only), or None when the dimensions differ.
        vector_a: a·R (A's vector in B's coordinates when aligned), vector_b: b; None when dims differ.
    """

    token: str
    drift: float | None
    jaccard: float
    norm_a: float
    norm_b: float
    neighbors_a: list[tuple[str, float]]
    neighbors_b: list[tuple[str, float]]
    common: list[str]
    difference: np.ndarray | None
    vector_a: np.ndarray | None
    vector_b: np.ndarray | None

    @property
    def difference_norm(self) -> float | None:
        return None if self.difference is None else float(np.linalg.norm(self.difference))

    def frame(self) -> pd.DataFrame:
        """Neighbours side by side: rank, in A (token, cosine), in B (token, cosine)."""
        import pandas as pd

        n = max(len(self.neighbors_a), len(self.neighbors_b))

        def col(items: list[tuple[str, float]], j: int) -> list[Any]:
            return [items[i][j] if i < len(items) else None for i in range(n)]

        return pd.DataFrame({"rank": np.arange(1, n + 1), "in A": col(self.neighbors_a, 0),
                             "cosine in A": col(self.neighbors_a, 1), "in B": col(self.neighbors_b, 0),
                             "cosine in B": col(self.neighbors_b, 1)})


def token_detail(c: Comparison, a: EmbeddingMatrix, b: EmbeddingMatrix, token: str) -> TokenDetail:
    """A compared token's neighbours in A and in B (with cosines) and the difference of its vectors.

    Raises:
        TokenNotFound: the token was not compared (with close compared tokens).
    """
    pos = c.position(token)
    na = [(c.tokens[int(i)], float(s)) for i, s in zip(c.neighbors_a[pos], c.scores_a[pos], strict=True) if i >= 0]
    nb = [(c.tokens[int(i)], float(s)) for i, s in zip(c.neighbors_b[pos], c.scores_b[pos], strict=True) if i >= 0]
    in_b = {t for t, _ in nb}
    diff = va = vb = None
    if c.dim_a == c.dim_b:
        va = np.asarray(a.vectors[c.rows_a[pos]], dtype=np.float64)
        if c.rotation is not None:
            va = va @ c.rotation
        vb = np.asarray(b.vectors[c.rows_b[pos]], dtype=np.float64)
        diff = _readonly(vb - va)
        va, vb = _readonly(va), _readonly(vb)
    return TokenDetail(token, None if c.drift is None else float(c.drift[pos]), float(c.jaccard[pos]),
                       float(c.norm_a[pos]), float(c.norm_b[pos]), na, nb, [t for t, _ in na if t in in_b],
                       diff, va, vb)


