"""What every objective shares while it trains: progress, cancel, the loss and grad-norm curves, the NaN
check, and the watch list (cosine to the start and nearest neighbours, per epoch).

Per-step numbers stay on the device as tensors and are read back at most every ``interval`` seconds, so a
GPU run is not synchronised on every step; a NaN is still reported at the exact step it appeared.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

#: The most points of a curve kept in ``run.json`` (longer curves are averaged over buckets of steps).
MAX_CURVE_POINTS = 2000

# Function words crowd the top of any frequency list; the default watch list skips them so that it
# shows the domain's own words.
_STOPWORDS = frozenset({
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "with", "at", "by", "from", "is", "are",
    "was", "were", "be", "been", "being", "it", "its", "as", "that", "this", "these", "those", "than", "but",
    "not", "no", "has", "have", "had", "will", "would", "can", "could", "should", "may", "might", "said", "he",
    "she", "they", "we", "i", "you", "his", "her", "their", "our", "your", "them", "him", "us", "me", "my",
    "which", "who", "whom", "what", "when", "where", "while", "also", "into", "over", "after", "before",
    "about", "up", "down", "out", "more", "most", "so", "if", "then", "there", "here", "do", "does", "did",
})


class TrainingDiverged(ParameterError):
    """The loss became NaN or infinite; the run stopped and nothing was written.

    Attributes:
        step: the first step whose loss was not finite (1-based).
        epoch: its epoch (1-based).
    """

    def __init__(self, message: str, step: int, epoch: int) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch


@dataclass(frozen=True)
class TrainingUpdate:
    """One progress report from a running fine-tune (what the page's live chart and the CLI bar draw).

    Attributes:
        step, total_steps: optimisation steps done and planned.
        epoch, epochs: the current epoch (1-based) and the planned number.
        loss: the mean loss of the steps since the last report.
        tokens_per_s: tokens processed per second so far.
        eta_s: seconds left, estimated from the rate so far (None before the first step).
        fraction: share of the run done, 0..1.
        message: the same as one line of text.
        losses: (step, loss) of every step since the last report (for a live chart).
        event: "step" or "epoch" (an epoch just ended; ``epoch_stats`` holds its numbers).
    """

    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    tokens_per_s: float
    eta_s: float | None
    fraction: float
    message: str
    losses: tuple[tuple[int, float], ...] = ()
    event: str = "step"
    epoch_stats: dict[str, Any] = field(default_factory=dict)


UpdateFn = Callable[[TrainingUpdate], None]


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def downsample(xs: Sequence[float], steps: Sequence[int],
               limit: int = MAX_CURVE_POINTS) -> tuple[list[int], list[float]]:
    """At most ``limit`` points of a curve: bucket means, each at its bucket's last step."""
    n = len(xs)
    if n <= limit:
        return list(steps), [float(x) for x in xs]
    edges = np.linspace(0, n, limit + 1).astype(int)
    a = np.asarray(xs, dtype=np.float64)
    spans = [(s, e) for s, e in itertools.pairwise(edges.tolist()) if e > s]
    vals = [float(a[s:e].mean()) for s, e in spans]
    at = [int(steps[e - 1]) for _, e in spans]
    return at, vals


class Monitor:
    """Records every step and reports to the progress callback, the update callback and the cancel check.

    Args:
        total_steps: steps planned (for the fraction and the ETA).
        epochs: epochs planned.
        progress: ``core.progress.ProgressFn`` (fraction, message).
        cancel: ``core.progress.CancelFn``; checked at every report, raises :class:`~core.errors.Cancelled`.
        on_update: a richer callback receiving :class:`TrainingUpdate`.
        interval: seconds between reports (the last step of an epoch always reports).
    """

    def __init__(self, total_steps: int, epochs: int, progress: ProgressFn | None = None,
                 cancel: CancelFn | None = None, on_update: UpdateFn | None = None,
                 interval: float = 0.25) -> None:
        self.total_steps = max(1, int(total_steps))
        self.epochs = epochs
        self._report = Reporter(progress, cancel)
        self._on_update = on_update
        self.interval = interval
        self.step_no = 0
        self.tokens = 0
        self.epoch = 1
        self.loss_steps: list[int] = []
        self.loss_epochs: list[int] = []
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.epoch_stats: list[dict[str, Any]] = []
        self._pending: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._since_report: list[tuple[int, float]] = []

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def start(self, message: str = "starting") -> None:
        """Report 0% (and check cancel) before the first step."""
        self._t0 = self._last = time.perf_counter()
        self._report(0.0, message)

    def step(self, loss: torch.Tensor | float, grad_norm: torch.Tensor | float, tokens: int = 0,
             epoch: int | None = None, fraction: float | None = None) -> None:
        """Record one step; report when ``interval`` seconds have passed.

        Args:
            loss: the step's mean loss (a 0-d tensor is fine: it is read back at the next report).
            grad_norm: the embedding's gradient norm at this step.
            tokens: corpus tokens this step covered (for tokens/s).
            epoch: the step's epoch (1-based; default: the current one).
            fraction: share of the run done after this step (default: step / total_steps).

        Raises:
            TrainingDiverged: a recorded loss is NaN or infinite (checked at each report).
            Cancelled: the cancel check said so.
        """
        self.step_no += 1
        self.tokens += tokens
        if epoch is not None:
            self.epoch = epoch
        lt = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        gt = grad_norm.detach() if isinstance(grad_norm, torch.Tensor) else torch.tensor(float(grad_norm))
        self._pending.append((self.step_no, self.epoch, lt, gt))
        now = time.perf_counter()
        if now - self._last >= self.interval or self.step_no >= self.total_steps:
            self.flush(fraction)

    def _drain(self) -> None:
        if not self._pending:
            return
        losses = torch.stack([p[2].float().reshape(()) for p in self._pending]).cpu().tolist()
        norms = torch.stack([p[3].float().reshape(()) for p in self._pending]).cpu().tolist()
        for (step, epoch, _, _), lv, gv in zip(self._pending, losses, norms, strict=True):
            if not math.isfinite(lv):
                self._pending = []
                raise TrainingDiverged(
                    f"the loss became {lv} at step {step} (epoch {epoch}); the run stopped and nothing was "
                    "written. Lower the learning rate (lr), or check the matrix for NaN/Inf rows", step, epoch)
            self.loss_steps.append(step)
            self.loss_epochs.append(epoch)
            self.losses.append(lv)
            self.grad_norms.append(gv)
            self._since_report.append((step, lv))
        self._pending = []

    def flush(self, fraction: float | None = None, event: str = "step",
              epoch_stats: dict[str, Any] | None = None) -> None:
        """Read back pending steps, check them for NaN, and report."""
        self._drain()
        self._last = time.perf_counter()
        frac = min(1.0, self.step_no / self.total_steps) if fraction is None else min(1.0, fraction)
        elapsed = self.elapsed
        tps = self.tokens / elapsed if elapsed > 0 else 0.0
        eta = elapsed / frac * (1 - frac) if frac > 0 else None
        recent = self._since_report
        loss = float(np.mean([v for _, v in recent])) if recent else (self.losses[-1] if self.losses else math.nan)
        msg = (f"epoch {self.epoch}/{self.epochs} · step {self.step_no}/{self.total_steps} · loss {loss:.4f} · "
               f"{tps:,.0f} tokens/s · ETA {_fmt_eta(eta)}")
        self._report(frac, msg)
        if self._on_update is not None:
            self._on_update(TrainingUpdate(self.step_no, self.total_steps, self.epoch, self.epochs, loss, tps, eta,
                                           frac, msg, tuple(recent), event, dict(epoch_stats or {})))
        self._since_report = []

    def epoch_loss(self, epoch: int) -> float | None:
        """The mean loss of this process's steps in ``epoch`` (None before its first step)."""
        self._drain()
        vals = [v for v, e in zip(self.losses, self.loss_epochs, strict=True) if e == epoch]
        return float(np.mean(vals)) if vals else None

    def end_epoch(self, epoch: int, stats: dict[str, Any], fraction: float | None = None) -> None:
        """Record an epoch's numbers (mean loss, validation scores, watch list) and report."""
        self._drain()
        start = next((i for i, e in enumerate(self.loss_epochs) if e == epoch), len(self.losses))
        epoch_losses = [v for v, e in zip(self.losses[start:], self.loss_epochs[start:], strict=True) if e == epoch]
        row = {"epoch": epoch, "loss": float(np.mean(epoch_losses)) if epoch_losses else None,
               "steps": len(epoch_losses), "elapsed_s": round(self.elapsed, 3), **stats}
        self.epoch_stats.append(row)
        self.flush(fraction, event="epoch", epoch_stats=row)

    def curves(self) -> dict[str, Any]:
        """The run card's ``loss_curve`` and ``grad_norm`` (downsampled to :data:`MAX_CURVE_POINTS`)."""
        self._drain()
        ls, lv = downsample(self.losses, self.loss_steps)
        _, le = downsample([float(e) for e in self.loss_epochs], self.loss_steps)
        gs, gv = downsample(self.grad_norms, self.loss_steps)
        return {"loss_curve": {"step": ls, "epoch": [round(e, 3) for e in le], "loss": lv},
                "grad_norm": {"step": gs, "value": gv}}


# -- the watch list ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WatchItem:
    """A watched word: its label and the matrix rows whose mean is its vector."""

    label: str
    rows: tuple[int, ...]


def default_watch(m: EmbeddingMatrix, ids: np.ndarray, size: int) -> list[WatchItem]:
    """The corpus's most frequent words (kind word or cjk, not function words), most frequent first."""
    if size <= 0 or ids.size == 0:
        return []
    counts = np.bincount(ids, minlength=len(m))
    order = np.argsort(-counts, kind="stable")
    kinds = m.kinds
    out: list[WatchItem] = []
    for r in order:
        if counts[r] == 0 or len(out) >= size:
            break
        token = m.index_to_key[int(r)]
        if kinds[int(r)] in ("word", "cjk") and token.casefold().lstrip("Ġ▁") not in _STOPWORDS:
            out.append(WatchItem(token, (int(r),)))
    return out


def check_ids(m: EmbeddingMatrix, ids: np.ndarray, what: str) -> None:
    """Refuse data tokenised with another matrix (ids past this matrix's rows)."""
    if ids.size and int(ids.max()) >= len(m):
        raise ParameterError(f"{what}: it was tokenised with another matrix (ids past this matrix's rows)")


def resolve_watch(m: EmbeddingMatrix, words: Sequence[str]) -> list[WatchItem]:
    """Watch items for user-given words (a word the tokenizer splits is the mean of its pieces).

    Raises:
        ParameterError: a word gives no known piece (naming the word and close spellings).
    """
    out: list[WatchItem] = []
    for w in words:
        w = w.strip()
        if not w:
            continue
        if w in m.key_to_index:
            out.append(WatchItem(w, (m.key_to_index[w],)))
            continue
        try:
            _, pieces = m.text_vector(w, strict=True)
        except TokenNotFound as err:
            raise ParameterError(f"watch: {err}; choose words the vocabulary has") from err
        out.append(WatchItem(w, tuple(p.id for p in pieces)))
    return out


def _unit(a: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


class Watch:
    """Tracks watched words while rows ``trained`` of ``m`` change; the other rows stay as in ``m``.

    Args:
        m: the original matrix.
        items: the watched words.
        trained: the matrix rows being trained, sorted (row ``trained[j]`` is row ``j`` of the table).
        k: neighbours to list per word.
    """

    def __init__(self, m: EmbeddingMatrix, items: list[WatchItem], trained: np.ndarray, k: int = 5) -> None:
        self.m = m
        self.items = items
        self.trained = np.asarray(trained, dtype=np.int64)
        self.k = k
        self._start = np.stack([np.asarray(m.vectors[list(it.rows)], dtype=np.float32).mean(axis=0)
                                for it in items]) if items else np.zeros((0, m.dim), np.float32)
        self.history: list[dict[str, Any]] = []

    def _current(self, table: np.ndarray) -> np.ndarray:
        out = []
        for it in self.items:
            rows = np.asarray(it.rows, dtype=np.int64)
            pos = np.searchsorted(self.trained, rows)
            hit = pos < self.trained.size
            hit[hit] = self.trained[pos[hit]] == rows[hit]
            vecs = np.asarray(self.m.vectors[rows], dtype=np.float32).copy()
            if hit.any():
                vecs[hit] = table[pos[hit]]
            out.append(vecs.mean(axis=0))
        return np.stack(out) if out else np.zeros((0, self.m.dim), np.float32)

    def snapshot(self, epoch: int, table: np.ndarray) -> list[dict[str, Any]]:
        """Cosine to the start and the ``k`` nearest rows of every watched word, given the trained rows."""
        if not self.items:
            return []
        q = self._current(table)
        cos_start = np.einsum("ij,ij->i", _unit(q), _unit(self._start))
        ids, scores = _neighbors(self.m, q, self.trained, table, self.k,
                                 [list(it.rows) for it in self.items])
        rows = []
        for i, it in enumerate(self.items):
            nb = [[self.m.index_to_key[int(j)], round(float(s), 4)] for j, s in zip(ids[i], scores[i], strict=True)
                  if j >= 0]
            rows.append({"epoch": epoch, "token": it.label, "cosine_to_start": round(float(cos_start[i]), 6),
                         "neighbours": nb})
        self.history.extend(rows)
        return rows

    def to_json(self) -> dict[str, Any]:
        """The run card's ``watch`` entry."""
        return {"tokens": [it.label for it in self.items], "rows": [list(it.rows) for it in self.items],
                "k": self.k, "per_epoch": self.history}


def _neighbors(m: EmbeddingMatrix, q: np.ndarray, trained: np.ndarray, table: np.ndarray, k: int,
               exclude: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine neighbours of ``q`` over ``m`` with rows ``trained`` replaced by ``table``.

    The untouched rows are searched by :func:`core.search.knn` (masking the trained ones); the trained
    rows, few and small, are scored here; the two top-k lists are merged.
    """
    n = len(m)
    k_eff = min(k, n - 1) if n > 1 else 1
    mask = np.ones(n, dtype=bool)
    mask[trained] = False
    qn = _unit(q.astype(np.float32))
    if mask.any():
        from core.search import knn

        width = max(len(e) for e in exclude)
        excl = np.full((len(exclude), width), -1, dtype=np.int64)
        for i, e in enumerate(exclude):
            excl[i, :len(e)] = e
        k_base = min(k_eff, int(mask.sum()))
        b_ids, b_scores = knn(m, qn, k=k_base, exclude=excl, mask=mask)
        b_ids, b_scores = np.asarray(b_ids), np.asarray(b_scores, dtype=np.float64)
    else:
        b_ids = np.zeros((len(q), 0), np.int64)
        b_scores = np.zeros((len(q), 0))
    if trained.size:
        t_scores = (_unit(table.astype(np.float32)) @ qn.T).T.astype(np.float64)
        for i, e in enumerate(exclude):
            hit = np.isin(trained, e)
            t_scores[i, hit] = -np.inf
        kk = min(k_eff, trained.size)
        part = np.argpartition(-t_scores, kk - 1, axis=1)[:, :kk]
        t_ids = trained[part]
        t_top = np.take_along_axis(t_scores, part, axis=1)
    else:
        t_ids = np.zeros((len(q), 0), np.int64)
        t_top = np.zeros((len(q), 0))
    ids = np.concatenate([b_ids, t_ids], axis=1)
    scores = np.concatenate([b_scores, t_top], axis=1)
    scores = np.where((ids < 0) | ~np.isfinite(scores), -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
    ids = np.take_along_axis(ids, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    ids = np.where(np.isfinite(scores), ids, -1)
    return ids, scores


__all__ = ["MAX_CURVE_POINTS", "Monitor", "TrainingDiverged", "TrainingUpdate", "UpdateFn", "Watch", "WatchItem",
           "default_watch", "downsample", "resolve_watch"]
