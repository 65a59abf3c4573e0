"""Before/after comparison of two matrices: which tokens moved, did their neighbourhoods change, is the space
better or worse — after a fine-tune, between two releases, or against a quantised copy.

    >>> import core
    >>> from core import compare
    >>> a = core.load("demo")
    >>> b = core.load("runs/finance")                  # a fine-tune of the demo
    >>> c = compare.compare(a, b, k=10)
    >>> c.aligned, c.alignment                         # doctest: +ELLIPSIS
    (False, 'none: B is a fine-tune of A ...')
    >>> c.table(top=3)[["token", "drift", "jaccard"]]  # the moved-most tokens
    >>> impact = compare.quantization_impact(a)        # fp16, bf16 and int8 copies of A
    >>> impact.frame()[["format", "mean_drift", "median_jaccard"]]

What is measured, per token both matrices hold (matched by token string):

* **drift** = 1 − cosine(a·R, b), where R is the orthogonal Procrustes rotation fitted on unit-length
  rows of the shared tokens (or of the first N of them), or the identity when no alignment is used;
* **Jaccard@k** of the token's k nearest neighbours (cosine) in A and in B. Both searches run over the
  compared tokens only, so the two neighbour sets are drawn from the same tokens; both go through
  :func:`core.search.knn`, the one batched, chunked neighbour search;
* **norm change**: |b| − |a| (a rotation keeps norms, so alignment does not touch it).

Alignment (``align=None``, the default, decides): independently trained matrices live in unrelated
coordinate systems, so they are aligned. A fine-tune of A (its ``run.json`` names A's content fingerprint
as ``source.fingerprint``), two fine-tunes of the same source, or a quantised copy share A's space: there a
rotation would only hide real movement, so none is fitted. Matrices of different dimension cannot be
rotated onto each other: they are compared by neighbourhoods only (drift is then None), and asking for
alignment is a :class:`~core.errors.ParameterError`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core._io import atomic_dir
from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.search import knn

if TYPE_CHECKING:
    import pandas as pd

    from core.evaluate import AnalogySet, PairSet
    from core.export import Exported
    from core.projection import Projection

#: Quantised formats a matrix can be compared with: half precision, bfloat16, int8 with one scale per row.
QUANT_FORMATS: tuple[str, ...] = ("fp16", "bf16", "int8")
#: Bytes per value of each format (int8 adds one float32 scale per row).
QUANT_BYTES = {"fp16": 2, "bf16": 2, "int8": 1}
#: Orders of the moved-most table.
SORTS: tuple[str, ...] = ("drift", "jaccard", "norm_change", "token")
#: The run card a fine-tune writes beside its weights (``core.finetune.runs.RUN_FILE``; read here without
#: importing core.finetune, which loads torch).
_RUN_FILE = "run.json"
#: Rows per chunk for the per-token arithmetic (float64 copies of a chunk stay near 32 MiB).
_CHUNK_VALUES = 1 << 22
#: Largest finite float16.
_FP16_MAX = 65504.0


# ================================================================================================
# Vocabulary match
# ================================================================================================
@dataclass(frozen=True, eq=False)
class VocabularyMatch:
    """Which tokens two matrices share, matched by token string.

    Attributes:
        tokens: the shared tokens, in A's row order.
        rows_a, rows_b: the row of each shared token in A and in B (read-only int64).
        only_a, only_b: tokens only one of them has (in row order).
    """

    tokens: tuple[str, ...]
    rows_a: np.ndarray
    rows_b: np.ndarray
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]

    @property
    def shared(self) -> int:
        return len(self.tokens)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def match_vocabulary(a: EmbeddingMatrix, b: EmbeddingMatrix) -> VocabularyMatch:
    """Shared, only-in-A and only-in-B tokens, matched by exact token string."""
    kb = b.key_to_index
    rows_a: list[int] = []
    rows_b: list[int] = []
    only_a: list[str] = []
    for i, t in enumerate(a.index_to_key):
        j = kb.get(t)
        if j is None:
            only_a.append(t)
        else:
            rows_a.append(i)
            rows_b.append(j)
    ka = a.key_to_index
    only_b = tuple(t for t in b.index_to_key if t not in ka)
    tokens = tuple(a.index_to_key[i] for i in rows_a)
    return VocabularyMatch(tokens, _readonly(np.asarray(rows_a, dtype=np.int64)),
                           _readonly(np.asarray(rows_b, dtype=np.int64)), tuple(only_a), only_b)


# ================================================================================================
# Which space: fine-tunes and quantised copies share their source's
# ================================================================================================
def _run_source(m: EmbeddingMatrix) -> str | None:
    """The ``source.fingerprint`` of the run card beside ``m``'s weights, when ``m`` is a fine-tune output."""
    p = m.provenance.path
    if not p:
        return None
    path = Path(p)
    card_path = (path if path.is_dir() else path.parent) / _RUN_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    src = card.get("source") if isinstance(card, dict) else None
    fp = src.get("fingerprint") if isinstance(src, dict) else None
    return fp if isinstance(fp, str) and fp else None


def _quantized_from(m: EmbeddingMatrix) -> str | None:
    fp = m.provenance.extra.get("quantized_from")
    return fp if isinstance(fp, str) else None


def shared_space(a: EmbeddingMatrix, b: EmbeddingMatrix) -> str | None:
    """Why A and B share one coordinate system without alignment, or None when nothing says so.

    True for a matrix and itself, a fine-tune and its source (the run card's ``source.fingerprint`` is the
    other's content fingerprint), two fine-tunes of the same source, and a quantised copy and its original.
    """
    fa, fb = a.fingerprint, b.fingerprint
    if fa == fb:
        return "B is A (the same content fingerprint)"
    src_a, src_b = _run_source(a), _run_source(b)
    if src_b is not None and src_b == fa:
        return "B is a fine-tune of A (its run.json names A as the source)"
    if src_a is not None and src_a == fb:
        return "A is a fine-tune of B (its run.json names B as the source)"
    if src_a is not None and src_a == src_b:
        return "A and B are fine-tunes of the same source (their run.json files say so)"
    if _quantized_from(b) == fa:
        return f"B is a {b.provenance.dtype} copy of A"
    if _quantized_from(a) == fb:
        return f"A is a {a.provenance.dtype} copy of B"
    return None


# ================================================================================================
# The comparison
# ================================================================================================
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
        neighbors_a, neighbors_b: (tokens × k) positions into ``tokens`` of each token's nearest
            neighbours in A and in B, best first; scores_a, scores_b: their cosines.
        norm_a, norm_b: row norms (float32).
        notes: what the user should know (tokens left out, an under-determined rotation, ...).
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
    def order(self, sort: str = "drift", descending: bool | None = None) -> np.ndarray:
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

    def _select(self, sort: str, descending: bool | None, contains: str, rows_a: np.ndarray | None,
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

    def table(self, sort: str = "drift", top: int | None = 100, *, contains: str = "",
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

    def moved(self, top: int = 50, sort: str = "drift", *, contains: str = "",
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
                "identical": self.identical,
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


def _label(m: EmbeddingMatrix) -> str:
    return m.provenance.path or f"derived ({m.shape[0]}×{m.shape[1]})"


def _check_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name}={value!r}: must be a whole number")
    if value < lo:
        raise ParameterError(f"{name}={value}: must be at least {lo}")
    return int(value)


def _span(report: Reporter, lo: float, hi: float, what: str) -> ProgressFn:
    def sub(fraction: float, message: str) -> None:
        report(lo + (hi - lo) * fraction, what)
    return sub


def _rows_f64(m: EmbeddingMatrix, rows: np.ndarray) -> np.ndarray:
    return np.asarray(m.vectors[rows], dtype=np.float64)


def _unit64(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def fit_rotation(a: EmbeddingMatrix, b: EmbeddingMatrix, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """Orthogonal Procrustes: the rotation R minimising ‖unit(A)·R − unit(B)‖ over the given row pairs.

    Rows are unit-normalised first, so every anchor token counts the same whatever its norm. R = U·Vᵀ from
    the SVD of unit(A)ᵀ·unit(B) (as ``scipy.linalg.orthogonal_procrustes``), accumulated in chunks.

    Raises:
        ParameterError: the dimensions differ.
    """
    if a.dim != b.dim:
        raise ParameterError(f"align: A has {a.dim} dimensions and B {b.dim}; a rotation needs equal dimensions")
    cross = np.zeros((a.dim, a.dim), dtype=np.float64)
    step = max(1, _CHUNK_VALUES // max(1, a.dim))
    for s in range(0, rows_a.size, step):
        xa = _unit64(_rows_f64(a, rows_a[s:s + step]))
        xb = _unit64(_rows_f64(b, rows_b[s:s + step]))
        ok = np.isfinite(xa).all(axis=1) & np.isfinite(xb).all(axis=1)  # a NaN/Inf row has no direction to fit
        cross += xa[ok].T @ xb[ok]
    u, _, vt = np.linalg.svd(cross)
    rot = u @ vt
    return _readonly(rot)


def _drift(a: EmbeddingMatrix, b: EmbeddingMatrix, rows_a: np.ndarray, rows_b: np.ndarray,
           rotation: np.ndarray | None) -> np.ndarray:
    """1 − cosine(a·R, b) per row pair, in float64; two zero rows have drift 0, one zero row drift 1."""
    out = np.empty(rows_a.size, dtype=np.float64)
    step = max(1, _CHUNK_VALUES // max(1, a.dim))
    for s in range(0, rows_a.size, step):
        xa = _rows_f64(a, rows_a[s:s + step])
        if rotation is not None:
            xa = xa @ rotation
        xb = _rows_f64(b, rows_b[s:s + step])
        na, nb = np.linalg.norm(xa, axis=1), np.linalg.norm(xb, axis=1)
        dot = np.einsum("ij,ij->i", xa, xb)
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1.0, 0.0))
        drift = 1.0 - np.clip(cos, -1.0, 1.0)
        if rotation is None:  # an unchanged row has drift exactly 0, not a rounding error's worth
            drift[np.all(xa == xb, axis=1)] = 0.0
        out[s:s + step] = drift
    out[~np.isfinite(out)] = np.nan
    return _readonly(out)


def _neighbours(m: EmbeddingMatrix, rows: np.ndarray, k: int, device: str, progress: ProgressFn,
                cancel: CancelFn | None) -> tuple[np.ndarray, np.ndarray]:
    """Each compared row's k nearest neighbours among the compared rows (itself left out), as positions.

    One call of :func:`core.search.knn`. When every row is compared, in order, the matrix itself is the
    query batch (read block by block, no copy) and no mask is needed.
    """
    everything = rows.size == len(m) and bool(np.all(rows == np.arange(len(m))))
    if everything:
        queries, mask = m.vectors, None
    else:
        queries = m.vectors[rows]
        mask = np.zeros(len(m), dtype=bool)
        mask[rows] = True
    ids, scores = knn(m, queries, k, "cosine", exclude=rows, mask=mask, device=device, progress=progress,
                      cancel=cancel)
    where = np.full(len(m), -1, dtype=np.int64)
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


def _choose(vocab: VocabularyMatch, tokens: Sequence[str] | None, limit: int | None) -> tuple[np.ndarray, list[str]]:
    """Positions (into the shared tokens) to compare, and notes on what was left out."""
    notes: list[str] = []
    pos = np.arange(vocab.shared)
    if tokens is not None:
        if isinstance(tokens, str):
            raise ParameterError("tokens: give a list of tokens, not one string")
        where = {t: i for i, t in enumerate(vocab.tokens)}
        wanted = list(dict.fromkeys(t for t in tokens if isinstance(t, str)))
        chosen = sorted({where[t] for t in wanted if t in where})
        missing = [t for t in wanted if t not in where]
        if missing:
            shown = ", ".join(repr(t) for t in missing[:5]) + (" …" if len(missing) > 5 else "")
            notes.append(f"{len(missing):,} of the {len(wanted):,} tokens asked for are not shared and were left "
                         f"out: {shown}")
        if not chosen:
            raise ParameterError(f"tokens: none of the {len(wanted):,} tokens asked for is in both A and B")
        pos = np.asarray(chosen, dtype=np.int64)
    if limit is not None:
        limit = _check_int("limit", limit, 2)
        if limit < pos.size:
            notes.append(f"only the first {limit:,} of {pos.size:,} shared tokens (A's row order) are compared")
            pos = pos[:limit]
    return pos, notes


def compare(a: EmbeddingMatrix, b: EmbeddingMatrix, *, k: int = 10, align: bool | None = None,
            align_on: int | None = None, tokens: Sequence[str] | None = None, limit: int | None = None,
            allow_same: bool = False, device: str = "auto", progress: ProgressFn | None = None,
            cancel: CancelFn | None = None) -> Comparison:
    """Compare A (before) with B (after), token by token.

    Args:
        a, b: the two matrices; tokens are matched by string.
        k: neighbours per token for Jaccard@k (found among the compared tokens).
        align: rotate A onto B by orthogonal Procrustes. None (default) decides: aligned unless B is a
            fine-tune of A (or A of B, or both of one source, per their run.json) or a quantised copy,
            and never when the dimensions differ (then neighbourhoods only).
        align_on: fit the rotation on the first N shared tokens (A's row order; the most frequent in
            word2vec files) instead of all of them.
        tokens: compare only these tokens (those not in both matrices are noted and left out).
        limit: compare only the first N shared (or chosen) tokens: for very large vocabularies.
        allow_same: kept for callers written when a matrix compared with itself was refused; it is always
            allowed now (zero drift, Jaccard 1.0, and a note that A and B are identical).
        device: for the neighbour searches ("auto", "cpu", "cuda").
        progress, cancel: see :mod:`core.progress`.

    Raises:
        ParameterError: no shared token, ``align=True`` with different
            dimensions, a bad ``k``/``align_on``/``limit``, or ``k`` too large for the compared tokens.
        Cancelled: through ``cancel``.
    """
    return _compare(a, b, k=k, align=align, align_on=align_on, tokens=tokens, limit=limit, allow_same=allow_same,
                    device=device, progress=progress, cancel=cancel)


def _compare(a: EmbeddingMatrix, b: EmbeddingMatrix, *, k: int, align: bool | None, align_on: int | None,
             tokens: Sequence[str] | None, limit: int | None, allow_same: bool, device: str,
             progress: ProgressFn | None, cancel: CancelFn | None,
             known_a: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> Comparison:
    """:func:`compare`; ``known_a`` = (rows, neighbour positions, scores) of A computed before, reused."""
    t0 = time.perf_counter()
    k = _check_int("k", k, 1)
    if align_on is not None:
        align_on = _check_int("align_on", align_on, 1)
    if align not in (None, True, False):
        raise ParameterError(f"align={align!r}: must be True, False or None (decide from the matrices)")
    report = Reporter(progress, cancel)
    report(0.0, "matching the vocabularies")
    # A release whose embeddings did not change is a valid comparison (zero drift, every neighbourhood
    # kept), not an error: a release pipeline compares every new build with the last one.
    identical = a.fingerprint == b.fingerprint
    if align and a.dim != b.dim:
        raise ParameterError(f"align: A has {a.dim} dimensions and B {b.dim}; spaces of different dimension "
                             "cannot be rotated onto each other. Compare them by neighbourhoods only "
                             "(align=False, --no-align)")
    vocab = match_vocabulary(a, b)
    if vocab.shared == 0:
        ex_a = ", ".join(repr(t) for t in a.index_to_key[:3])
        ex_b = ", ".join(repr(t) for t in b.index_to_key[:3])
        raise ParameterError(f"A and B share no token (A has {len(a):,}, e.g. {ex_a}; B has {len(b):,}, e.g. "
                             f"{ex_b}); tokens are matched by exact string, so compare matrices with a common "
                             "vocabulary")
    pos, notes = _choose(vocab, tokens, limit)
    if identical:
        notes.insert(0, f"A and B are identical (the same content fingerprint {a.fingerprint}: the same tokens "
                        "and vectors), so nothing moved")
    rows_a, rows_b = vocab.rows_a[pos], vocab.rows_b[pos]
    n = int(pos.size)
    if k > n - 1:
        raise ParameterError(f"k={k}: only {n:,} tokens are compared, so each has at most {n - 1:,} neighbours "
                             f"among them; choose k ≤ {max(n - 1, 0):,}" + (" (compare more tokens)" if n < 2 else ""))

    # -- alignment and drift
    report(0.02, "alignment")
    same_dim = a.dim == b.dim
    rotation: np.ndarray | None = None
    anchors = 0
    if not same_dim:
        alignment = (f"none: A has {a.dim} dimensions and B {b.dim}, so they are compared by neighbourhoods only "
                     "(no drift)")
        aligned = False
    else:
        why = shared_space(a, b) if align is None else None
        if align is False:
            aligned, alignment = False, "none (turned off): drift is measured in the raw coordinates"
        elif why is not None:
            aligned, alignment = False, f"none: {why}, so both share one space"
        else:
            fit_a, fit_b = vocab.rows_a, vocab.rows_b
            if align_on is not None and align_on < vocab.shared:
                fit_a, fit_b = fit_a[:align_on], fit_b[:align_on]
            anchors = int(fit_a.size)
            rotation = fit_rotation(a, b, fit_a, fit_b)
            aligned = True
            which = (f"the first {anchors:,} shared tokens" if anchors < vocab.shared
                     else f"all {anchors:,} shared tokens")
            alignment = f"orthogonal Procrustes fitted on {which}"
            if anchors < a.dim:
                notes.append(f"the rotation was fitted on {anchors:,} tokens, fewer than the {a.dim} dimensions, "
                             "so it is under-determined; fit it on more tokens (align_on)")
    report(0.05, "drift per token")
    drift = _drift(a, b, rows_a, rows_b, rotation) if same_dim else None

    # -- neighbourhoods
    if known_a is not None and np.array_equal(known_a[0], rows_a):
        nb_a, sc_a = known_a[1], known_a[2]
    else:
        nb_a, sc_a = _neighbours(a, rows_a, k, device, _span(report, 0.08, 0.53, f"{k} neighbours of "
                                                              f"{n:,} tokens in A"), cancel)
    if identical and np.array_equal(rows_a, rows_b):
        nb_b, sc_b = nb_a, sc_a  # the same rows of the same vectors: the same neighbours
    else:
        nb_b, sc_b = _neighbours(b, rows_b, k, device,
                                 _span(report, 0.53, 0.98, f"{k} neighbours of {n:,} tokens in B"), cancel)
    report(0.98, "Jaccard@k")
    jac = jaccard(nb_a, nb_b)
    norm_a = _readonly(np.asarray(a.norms[rows_a], dtype=np.float32))
    norm_b = _readonly(np.asarray(b.norms[rows_b], dtype=np.float32))
    report(1.0, "done")
    return Comparison(_label(a), _label(b), a.fingerprint, b.fingerprint, a.dim, b.dim, vocab,
                      tuple(vocab.tokens[i] for i in pos.tolist()), _readonly(rows_a), _readonly(rows_b), k,
                      aligned, alignment, anchors, rotation, drift, jac, nb_a, sc_a, nb_b, sc_b, norm_a, norm_b,
                      tuple(notes), time.perf_counter() - t0)


# ================================================================================================
# One token in detail
# ================================================================================================
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


# ================================================================================================
# Filters: tokens of a corpus
# ================================================================================================
def corpus_rows(m: EmbeddingMatrix, path: str | os.PathLike[str], column: str | None = None) -> np.ndarray:
    """Rows of ``m`` whose token occurs in a corpus file, tokenised as fine-tuning does (sorted, unique).

    Uses :func:`core.finetune.corpus.load_corpus` (the matrix's own tokenizer, or words looked up in the
    vocabulary), so "tokens of the fine-tuning corpus" means exactly the rows a fine-tune trained.

    Raises:
        FormatError: the file is missing, unreadable, or has no token of the vocabulary.
    """
    from core.finetune.corpus import load_corpus

    return _readonly(np.unique(load_corpus(m, path, column=column).ids))


def corpus_rows_of_texts(m: EmbeddingMatrix, texts: Sequence[str]) -> np.ndarray:
    """:func:`corpus_rows` for texts already in memory (an upload)."""
    from core.finetune.corpus import tokenize

    return _readonly(np.unique(tokenize(m, list(texts)).ids))


# ================================================================================================
# Joint projection
# ================================================================================================
@dataclass(frozen=True, eq=False)
class JointProjection:
    """A and B projected together: one fit on both spaces stacked.

    Attributes:
        frame: one row per point: token, side ("A" or "B"), x, y, drift, jaccard, selected (True for the
            tokens asked for, which get arrows).
        projection: the underlying :class:`core.projection.Projection` (rows: A's points, then B's).
        caption: what is shown, in words.
    """

    frame: pd.DataFrame
    projection: Projection
    caption: str

    @property
    def axis_titles(self) -> tuple[str, ...]:
        return self.projection.axis_titles

    def arrows(self) -> pd.DataFrame:
        """One row per selected token: token, x, y (in A), x2, y2 (in B), drift."""
        f = self.frame
        a = f[(f["side"] == "A") & f["selected"]].set_index("token")
        b = f[(f["side"] == "B") & f["selected"]].set_index("token")
        out = a[["x", "y", "drift", "jaccard"]].join(b[["x", "y"]].rename(columns={"x": "x2", "y": "y2"}))
        return out.reset_index()


def joint_projection(c: Comparison, a: EmbeddingMatrix, b: EmbeddingMatrix, tokens: Sequence[str] = (), *,
                     sample: int = 1000, top_moved: int = 10, method: str = "pca", seed: int = 0,
                     n_neighbors: int = 15, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> JointProjection:
    """Project A (aligned when the comparison was) and B with one PCA or UMAP fitted on both together.

    Args:
        tokens: tokens to follow with arrows (compared tokens; unknown ones raise).
        sample: how many other compared tokens to add for context (a seeded random sample).
        top_moved: also follow the most moved tokens (0 for none).
        method: "pca" or "umap" (through :func:`core.projection.project`).

    Raises:
        ParameterError: different dimensions (no shared space), a bad method or sample.
        TokenNotFound: a token that was not compared.
    """
    from core import projection as pj

    if c.dim_a != c.dim_b:
        raise ParameterError(f"joint projection: A has {c.dim_a} dimensions and B {c.dim_b}; only spaces of the "
                             "same dimension can be projected together")
    if method not in ("pca", "umap"):
        raise ParameterError(f"method={method!r}: the joint projection is 'pca' or 'umap'")
    sample = _check_int("sample", sample, 0)
    follow = [c.position(t.strip()) for t in tokens if t.strip()]
    follow += [int(i) for i in c.order("drift")[:max(0, top_moved)]]
    follow = list(dict.fromkeys(follow))
    rest = np.setdiff1d(np.arange(c.compared), np.asarray(follow, dtype=np.int64))
    rng = np.random.default_rng(seed)
    extra = np.sort(rng.choice(rest, size=min(sample, rest.size), replace=False)) if rest.size else rest
    pos = np.concatenate([np.asarray(follow, dtype=np.int64), extra.astype(np.int64)])
    if pos.size < 2:
        raise ParameterError("sample: the joint projection needs at least 2 tokens; raise sample or name tokens")
    va = np.asarray(a.vectors[c.rows_a[pos]], dtype=np.float64)
    if c.rotation is not None:
        va = va @ c.rotation
    vb = np.asarray(b.vectors[c.rows_b[pos]], dtype=np.float32)
    names = [c.tokens[i] for i in pos.tolist()]
    stacked = EmbeddingMatrix(np.vstack([va.astype(np.float32), vb]),
                              [f"A\u241f{t}" for t in names] + [f"B\u241f{t}" for t in names])
    sel = pj.select(stacked, pj.SelectionConfig(sampling="first"))
    cfg = pj.ProjectionConfig(method=method, dims=2, seed=seed, n_neighbors=min(n_neighbors, len(stacked) - 1))
    proj = pj.project(stacked, sel, cfg, progress=progress, cancel=cancel)
    import pandas as pd

    n = pos.size
    chosen = np.zeros(n, dtype=bool)
    chosen[:len(follow)] = True
    drift = c.drift[pos] if c.drift is not None else np.full(n, np.nan)
    frame = pd.DataFrame({"token": names * 2, "side": ["A"] * n + ["B"] * n,
                          "x": proj.coords[:, 0], "y": proj.coords[:, 1],
                          "drift": np.concatenate([drift, drift]),
                          "jaccard": np.concatenate([c.jaccard[pos], c.jaccard[pos]]),
                          "selected": np.concatenate([chosen, chosen])})
    where = "A rotated onto B by Procrustes" if c.aligned else "A and B in their own shared coordinates"
    caption = (f"{pj.METHOD_NAMES[method]} fitted once on {2 * n:,} points: {n:,} compared tokens in A and the "
               f"same in B ({where}); {len(follow):,} followed with arrows (the tokens asked for and the "
               f"{min(top_moved, c.compared)} most moved), the rest a random sample (seed {seed}).")
    if proj.explained_variance is not None:
        caption += f" The 2 components explain {float(proj.explained_variance[:2].sum()):.1%} of the variance."
    return JointProjection(frame, proj, caption)


# ================================================================================================
# Benchmark deltas
# ================================================================================================
@dataclass(frozen=True)
class BenchmarkDelta:
    """One benchmark's score on A and on B (analogy accuracy, or word-pair Spearman/Pearson)."""

    benchmark: str
    metric: str
    a: float
    b: float
    coverage_a: float
    coverage_b: float

    @property
    def delta(self) -> float:
        return self.b - self.a

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "metric": self.metric, "a": self.a, "b": self.b,
                "delta": self.delta, "coverage_a": self.coverage_a, "coverage_b": self.coverage_b}


def benchmark_deltas(a: EmbeddingMatrix, b: EmbeddingMatrix,
                     analogies: Sequence[str | os.PathLike[str] | AnalogySet] = (),
                     pairs: Sequence[str | os.PathLike[str] | PairSet] = (), *,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> list[BenchmarkDelta]:
    """Analogy accuracy and word-pair correlations on A and on B (through :mod:`core.evaluate`).

    Cosine scores do not change under a rotation, so these need no alignment.

    Raises:
        FormatError: a malformed or unknown benchmark file. Cancelled: through ``cancel``.
    """
    from core import evaluate

    report = Reporter(progress, cancel)
    jobs = len(analogies) + len(pairs)
    if jobs == 0:
        raise ParameterError("benchmarks: give at least one analogy or word-pair file")
    out: list[BenchmarkDelta] = []
    done = 0
    for src in analogies:
        res = []
        for j, m in enumerate((a, b)):
            res.append(evaluate.evaluate_analogies(
                m, src, progress=_span(report, (done + j / 2) / jobs, (done + (j + 1) / 2) / jobs,
                                       f"analogies on {'AB'[j]}"), cancel=cancel))
        out.append(BenchmarkDelta(res[0].file, "analogy accuracy", res[0].accuracy, res[1].accuracy,
                                  res[0].coverage, res[1].coverage))
        done += 1
    for pair_src in pairs:
        report(done / jobs, "word pairs")
        pa, pb = evaluate.evaluate_pairs(a, pair_src), evaluate.evaluate_pairs(b, pair_src)
        cov_a = pa.pairs / max(pa.pairs + pa.oov, 1)
        cov_b = pb.pairs / max(pb.pairs + pb.oov, 1)
        out.append(BenchmarkDelta(pa.file, "Spearman", pa.spearman, pb.spearman, cov_a, cov_b))
        out.append(BenchmarkDelta(pa.file, "Pearson", pa.pearson, pb.pearson, cov_a, cov_b))
        done += 1
    report(1.0, "done")
    return out


def deltas_frame(deltas: Sequence[BenchmarkDelta]) -> pd.DataFrame:
    """benchmark, metric, A, B, delta, coverage in A and B: one row per delta."""
    import pandas as pd

    return pd.DataFrame([{"benchmark": Path(d.benchmark).name or d.benchmark, "metric": d.metric, "A": d.a,
                          "B": d.b, "delta": d.delta, "coverage A": d.coverage_a, "coverage B": d.coverage_b}
                         for d in deltas], columns=["benchmark", "metric", "A", "B", "delta", "coverage A",
                                                    "coverage B"])


# ================================================================================================
# Quantisation impact
# ================================================================================================
def _check_format(fmt: str) -> None:
    if fmt not in QUANT_FORMATS:
        raise ParameterError(f"format={fmt!r}: must be one of {', '.join(QUANT_FORMATS)}")


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bits (uint16), rounded to nearest, ties to even (as torch does); NaN stays NaN."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    nan = np.isnan(x)
    if nan.any():
        rounded = np.where(nan, (bits >> np.uint32(16)) | np.uint32(0x0040), rounded)
    return rounded.astype(np.uint16)


def _int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row absmax int8: q = round(x / s) in [-127, 127] with s = max|x| / 127 (0 for an all-zero row)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        absmax = np.max(np.abs(x), axis=1)
    scale = (absmax / np.float32(127.0)).astype(np.float32)
    safe = np.where((scale > 0) & np.isfinite(scale), scale, np.float32(1.0))
    with np.errstate(invalid="ignore"):
        # float64: a float32 quotient can land on .5 exactly where the true one does not.
        q = np.clip(np.rint(x.astype(np.float64) / safe[:, None].astype(np.float64)), -127, 127)
    q = np.where(np.isfinite(q), q, 0).astype(np.int8)
    scale = np.where(np.isfinite(scale), scale, np.float32(0.0)).astype(np.float32)
    return q, scale


def _quantized_chunk(x: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    if fmt == "bf16":
        return (_bf16_bits(x).astype(np.uint32) << np.uint32(16)).view(np.float32)
    q, scale = _int8(x)
    return q.astype(np.float32) * scale[:, None]


def quantize(m: EmbeddingMatrix, fmt: str) -> EmbeddingMatrix:
    """A copy of ``m`` whose values went through ``fmt`` and back to float32 (what a runtime would compute with).

    fp16: IEEE half (values past ±65,504 become ±inf); bf16: bfloat16, round to nearest even; int8: one
    absmax scale per row, values rounded to −127..127.

    Raises:
        ParameterError: an unknown format.
    """
    _check_format(fmt)
    out = np.empty(m.shape, dtype=np.float32)
    step = max(1, _CHUNK_VALUES // max(1, m.dim))
    for s in range(0, len(m), step):
        out[s:s + step] = _quantized_chunk(np.asarray(m.vectors[s:s + step], dtype=np.float32), fmt)
    notes = (*m.provenance.notes, f"values went through {fmt} and back to float32")
    prov = replace(m.provenance, format="derived", dtype=fmt, notes=notes,
                   key=f"{m.provenance.key or m.fingerprint}:{fmt}",
                   extra={"quantized_from": m.fingerprint, "quantization": fmt})
    return m.with_vectors(out, prov)


def quantized_bytes(m: EmbeddingMatrix, fmt: str) -> int:
    """Bytes the matrix's values take in ``fmt`` (int8 adds one float32 scale per row)."""
    _check_format(fmt)
    rows, dim = m.shape
    return rows * dim * QUANT_BYTES[fmt] + (rows * 4 if fmt == "int8" else 0)


@dataclass(frozen=True, eq=False)
class QuantImpact:
    """What one format costs: bytes saved, drift and neighbourhood change against the float32 original."""

    format: str
    bytes: int
    bytes_float32: int
    comparison: Comparison
    overflow: int = 0

    def to_json(self) -> dict[str, Any]:
        s = self.comparison.summary()
        return {"format": self.format, "bytes": self.bytes, "bytes_float32": self.bytes_float32,
                "saved": 1.0 - self.bytes / max(self.bytes_float32, 1), "mean_drift": s.mean_drift,
                "p99_drift": s.p99_drift, "max_drift": s.max_drift, "median_jaccard": s.median_jaccard,
                "mean_jaccard": s.mean_jaccard, "changed_share": s.changed_share, "overflow": self.overflow}


@dataclass(frozen=True, eq=False)
class QuantReport:
    """:func:`quantization_impact`'s answer: one :class:`QuantImpact` per format."""

    impacts: list[QuantImpact]
    k: int

    def frame(self) -> pd.DataFrame:
        """format, MiB, saved, mean/p99/max drift, median/mean Jaccard@k, changed share, overflow."""
        import pandas as pd

        rows = []
        for imp in self.impacts:
            j = imp.to_json()
            rows.append({"format": imp.format, "MiB": imp.bytes / 2**20, "saved": j["saved"],
                         "mean_drift": j["mean_drift"], "p99_drift": j["p99_drift"], "max_drift": j["max_drift"],
                         "median_jaccard": j["median_jaccard"], "mean_jaccard": j["mean_jaccard"],
                         "changed_share": j["changed_share"], "overflow": imp.overflow})
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "formats": [i.to_json() for i in self.impacts]}


def quantization_impact(m: EmbeddingMatrix, formats: Sequence[str] = QUANT_FORMATS, *, k: int = 10,
                        limit: int | None = None, device: str = "auto", progress: ProgressFn | None = None,
                        cancel: CancelFn | None = None) -> QuantReport:
    """Compare ``m`` with its own fp16, bf16 and int8 copies, made on the fly: drift and Jaccard@k per format.

    A's neighbours are searched once and shared by every format; the copies share A's space, so no
    rotation is fitted.

    Raises:
        ParameterError: an unknown or repeated format, or a bad k/limit. Cancelled: through ``cancel``.
    """
    fmts = list(formats)
    if not fmts:
        raise ParameterError("formats: choose at least one of " + ", ".join(QUANT_FORMATS))
    for f in fmts:
        _check_format(f)
    if len(set(fmts)) != len(fmts):
        raise ParameterError("formats: a format is listed twice")
    k = _check_int("k", k, 1)
    report = Reporter(progress, cancel)
    vocab_all = np.arange(len(m), dtype=np.int64)
    rows = vocab_all if limit is None else vocab_all[:_check_int("limit", limit, 2)]
    if k > rows.size - 1:
        raise ParameterError(f"k={k}: only {rows.size:,} tokens are compared; choose k ≤ {rows.size - 1:,}")
    share = 1.0 / (len(fmts) + 1)
    nb_a, sc_a = _neighbours(m, rows, k, device, _span(report, 0.0, share, f"{k} neighbours of {rows.size:,} "
                                                       "tokens in the original"), cancel)
    impacts = []
    for i, fmt in enumerate(fmts):
        report(share * (i + 1), f"{fmt} copy")
        q = quantize(m, fmt)
        overflow = int(np.count_nonzero(~np.isfinite(q.norms) & np.isfinite(m.norms)))
        c = _compare(m, q, k=k, align=False, align_on=None, tokens=None, limit=limit, allow_same=True,
                     device=device, progress=_span(report, share * (i + 1), share * (i + 2), f"{fmt}: neighbours"),
                     cancel=cancel, known_a=(rows, nb_a, sc_a))
        c = replace(c, alignment=f"none: B is the {fmt} copy of A, so both share one space")
        impacts.append(QuantImpact(fmt, quantized_bytes(m, fmt), len(m) * m.dim * 4, c, overflow))
    report(1.0, "done")
    return QuantReport(impacts, k)


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata: dict[str, str]) -> None:
    """A safetensors file from raw arrays: name → (dtype tag such as "BF16", array of matching item size).

    Written directly (8-byte header length, JSON header, data) because numpy has no bfloat16 type.
    """
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name, (dtype, arr) in tensors.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


def export_quantized(m: EmbeddingMatrix, fmt: str, out: str | os.PathLike[str], *, force: bool = False,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Exported:
    """Write the ``fmt`` copy of ``m`` as a new safetensors folder (with its vocabulary), atomically.

    fp16 and bf16 are stored as F16/BF16 tensors named :data:`core.export.TENSOR_NAME`; :func:`core.load`
    reads them back to exactly :func:`quantize`'s values. int8 is stored as an I8 tensor
    ``<name>.int8`` and an F32 tensor ``<name>.scale`` (one per row: value = int8 × scale), the form a
    runtime dequantises; Embedscope opens the fp16/bf16 folders, and :func:`quantize` gives the int8 values.

    The vocabulary files are those :func:`core.export.export` writes for safetensors (an adapter: that
    function writes float32, so its weights file is replaced here before the folder takes its name).

    Raises:
        ParameterError: unknown format, or ``out`` is a source of ``m``.
        OutputExistsError: ``out`` exists and ``force`` is not set.
        Cancelled: through ``cancel``; nothing is left behind.
    """
    from core import export as ex

    _check_format(fmt)
    report = Reporter(progress, cancel)
    target = Path(out).expanduser()
    sources = ex.sources_of(m)
    report(0.0, f"{fmt}: converting")
    tensors: dict[str, tuple[str, np.ndarray]] = {}
    if fmt == "fp16":
        with np.errstate(over="ignore"):
            tensors[ex.TENSOR_NAME] = ("F16", np.asarray(m.vectors, dtype=np.float32).astype(np.float16))
    elif fmt == "bf16":
        tensors[ex.TENSOR_NAME] = ("BF16", _bf16_bits(np.asarray(m.vectors, dtype=np.float32)))
    else:
        q, scale = _int8(np.asarray(m.vectors, dtype=np.float32))
        tensors[f"{ex.TENSOR_NAME}.int8"] = ("I8", q)
        tensors[f"{ex.TENSOR_NAME}.scale"] = ("F32", scale)
    report(0.4, f"{fmt}: writing")
    meta = {"format": "pt", "written_by": "embedscope", "quantization": fmt, "source_fingerprint": m.fingerprint,
            "rows": str(len(m)), "dim": str(m.dim)}
    if fmt == "int8":
        meta["dequantize"] = f"{ex.TENSOR_NAME} = {ex.TENSOR_NAME}.int8 * {ex.TENSOR_NAME}.scale[:, None]"
    with atomic_dir(target, force=force, sources=sources) as tmp:
        base = ex.export(m.with_vectors(np.zeros((len(m), 1), dtype=np.float32)), tmp / ".vocab", "safetensors")
        files = []
        for f in base.files:
            if f.name != "model.safetensors":
                f.rename(tmp / f.name)
                files.append(tmp / f.name)
        (tmp / ".vocab" / "model.safetensors").unlink()
        (tmp / ".vocab").rmdir()
        report(0.6, f"{fmt}: writing")
        _write_safetensors(tmp / "model.safetensors", tensors, meta)
        report(0.95, "done")
    files = [target / "model.safetensors", *(target / f.name for f in files)]
    notes = [f"values stored as {fmt} ({quantized_bytes(m, fmt) / 2**20:,.1f} MiB instead of "
             f"{len(m) * m.dim * 4 / 2**20:,.1f} MiB)"]
    if fmt == "int8":
        notes.append(f"int8 values in {ex.TENSOR_NAME}.int8 with one float32 scale per row in "
                     f"{ex.TENSOR_NAME}.scale; value = int8 × scale")
    else:
        notes.append(f"the tensor is named {ex.TENSOR_NAME!r}; core.load reads it back as float32")
    report(1.0, "done")
    return ex.Exported("safetensors", target, tuple(files), len(m), m.dim, tuple(notes))


__all__ = [
    "QUANT_FORMATS",
    "SORTS",
    "BenchmarkDelta",
    "Comparison",
    "JointProjection",
    "QuantImpact",
    "QuantReport",
    "Summary",
    "TokenDetail",
    "VocabularyMatch",
    "benchmark_deltas",
    "compare",
    "corpus_rows",
    "corpus_rows_of_texts",
    "deltas_frame",
    "export_quantized",
    "fit_rotation",
    "jaccard",
    "joint_projection",
    "match_vocabulary",
    "quantization_impact",
    "quantize",
    "quantized_bytes",
    "shared_space",
    "token_detail",
]
