"""The comparison itself: :func:`compare` matches, aligns, measures drift and neighbourhoods."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from core.compare._align import VocabularyMatch, _drift, fit_rotation, match_vocabulary, shared_space
from core.compare._approx import NNDescentWorker, choose_search, worker_for
from core.compare._common import _check_int, _label, _readonly, _span
from core.compare._neighbors import _neighbors, jaccard
from core.compare._result import Comparison
from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter


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
            allow_same: bool = False, device: str = "auto", search: str = "auto",
            progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Comparison:
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
        search: "exact", "approximate" (NN-descent; a note and ``Comparison.search`` say so), or "auto":
            exact unless the compared tokens are too many for it on the CPU (compared² × dim past
            :data:`~core.compare._approx.EXACT_MAX_WORK`, e.g. 262,144 × 640).
        progress, cancel: see :mod:`core.progress`.

    Raises:
        ParameterError: no shared token, ``align=True`` with different
            dimensions, a bad ``k``/``align_on``/``limit``/``search``, or ``k`` too large for the compared
            tokens.
        Cancelled: through ``cancel``.
    """
    return _compare(a, b, k=k, align=align, align_on=align_on, tokens=tokens, limit=limit, allow_same=allow_same,
                    device=device, search=search, progress=progress, cancel=cancel)


def _compare(a: EmbeddingMatrix, b: EmbeddingMatrix, *, k: int, align: bool | None, align_on: int | None,
             tokens: Sequence[str] | None, limit: int | None, allow_same: bool, device: str,
             progress: ProgressFn | None, cancel: CancelFn | None, search: str = "auto",
             known_a: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
             worker: NNDescentWorker | None = None) -> Comparison:
    """:func:`compare`; ``known_a`` = (rows, neighbour positions, scores) of A computed before, reused;
    ``worker`` builds the approximate search's graphs (one for this comparison when None)."""
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
    how = choose_search(search, n, max(a.dim, b.dim), device)
    if how == "approximate":
        notes.append(f"neighbours are approximate (NN-descent graphs of A and B, seeded), so a few Jaccard@{k} "
                     "values may differ from the exact search's; compare with search='exact' (--search exact) "
                     "for exact ones")
    with worker_for(worker) as graphs:  # A's and B's graphs in one child process
        if known_a is not None and np.array_equal(known_a[0], rows_a):
            nb_a, sc_a = known_a[1], known_a[2]
        else:
            nb_a, sc_a = _neighbors(a, rows_a, k, device, _span(report, 0.08, 0.53, f"{k} neighbours of "
                                                                 f"{n:,} tokens in A"), cancel, how, graphs)
        if identical and np.array_equal(rows_a, rows_b):
            nb_b, sc_b = nb_a, sc_a  # the same rows of the same vectors: the same neighbours
        else:
            nb_b, sc_b = _neighbors(b, rows_b, k, device, _span(report, 0.53, 0.98, f"{k} neighbours of {n:,} "
                                                                 "tokens in B"), cancel, how, graphs)
    report(0.98, "Jaccard@k")
    jac = jaccard(nb_a, nb_b)
    norm_a = _readonly(np.asarray(a.norms[rows_a], dtype=np.float32))
    norm_b = _readonly(np.asarray(b.norms[rows_b], dtype=np.float32))
    report(1.0, "done")
    return Comparison(_label(a), _label(b), a.fingerprint, b.fingerprint, a.dim, b.dim, vocab,
                      tuple(vocab.tokens[i] for i in pos.tolist()), _readonly(rows_a), _readonly(rows_b), k,
                      aligned, alignment, anchors, rotation, drift, jac, nb_a, sc_a, nb_b, sc_b, norm_a, norm_b,
                      tuple(notes), time.perf_counter() - t0, search=how)


