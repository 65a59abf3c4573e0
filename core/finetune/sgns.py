"""Domain skip-gram with negative sampling (word2vec's SGNS), continued from an existing matrix.

Centre vectors start from the matrix rows. Context vectors are the very same table ("tied", the default:
a matrix that was not trained by SGNS has no context vectors of its own, and one shared table pulls
co-occurring tokens together directly), a copy of it trained apart ("copy"), or small random values
("random", word2vec's own start: slow to move a pretrained space; the bench uses it against gensim).
The objective and its schedule follow word2vec/gensim: subsampling of frequent tokens, a dynamic window
(each centre draws its window from 1..``window``), negatives drawn from the corpus unigram distribution to
the 0.75 power, and a learning rate that decays linearly to ``min_lr``. The sampling pieces (subsampling,
the negative table, the pairs, corpus chunks) are in :mod:`core.finetune._sgns_data`.

Only rows of tokens that occur in the corpus are trained: they are gathered into a small table. On a CPU,
word2vec's own per-pair loop, compiled (:mod:`core.finetune._sgns_kernel`), updates the touched rows in
place; on a GPU, pairs are processed in batches with hand-written gradients under autocast, and updates
go in with ``index_add_`` on the touched rows only. Several processes train shares of the corpus and add
up their changes (:mod:`core.finetune.distributed`). Every other row of the matrix is never copied into
the training table, so it comes out bit for bit as it went in.

    >>> from core import corpus
    >>> from core.finetune import sgns
    >>> c = corpus.load_corpus(m, "finance.txt")
    >>> result = sgns.train_sgns(m, c, sgns.SGNSConfig(epochs=3))
    >>> new = result.apply(m)                         # the full matrix with the trained rows replaced
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from core.corpus import UNKNOWN_POLICIES, Corpus, UnknownPolicy
from core.errors import ParameterError
from core.finetune import _config as cfg
from core.finetune._monitor import Monitor, UpdateFn, Watch, check_ids, default_watch, resolve_watch
from core.finetune._sgns_data import CHUNK_TOKENS, chunk_bounds, keep_probability, negative_table, pairs
from core.finetune.devices import DEVICE_CHOICES, Device, DevicePreference, choose_device
from core.finetune.distributed import SINGLE, SYNCS_PER_EPOCH, Dist, shard_bounds
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn

#: Values accepted by ``context=``.
ContextInit = Literal["copy", "random", "tied"]
CONTEXT_INITS: tuple[ContextInit, ...] = get_args(ContextInit)
# Negative-sampling table: entries per vocabulary row, bounded; small enough to stay in cache (random reads
# from a large table cost more than the draw itself).
_NEG_PER_ROW, _NEG_MIN, _NEG_MAX = 64, 1 << 16, 1 << 24
# Pairs per step of the compiled CPU loop (see _auto_batch).
_CPU_BATCH = 4096


@dataclass
class SGNSConfig:
    """Settings of a domain skip-gram run (validated by :meth:`validate`, which names the field)."""

    objective: ClassVar[cfg.Objective] = "sgns"

    epochs: int = cfg.opt(5, "passes over the corpus")
    window: int = cfg.opt(5, "largest distance between a centre token and a context token (each centre "
                             "draws its own window from 1..window)")
    negatives: int = cfg.opt(5, "negative samples per positive pair, drawn from unigram^0.75")
    lr: float = cfg.opt(0.025, "starting learning rate (word2vec's default); decays linearly to min_lr")
    min_lr: float = cfg.opt(0.0001, "learning rate at the end of the last epoch")
    subsample: float = cfg.opt(1e-3, "down-sample tokens more frequent than this share of the corpus "
                                     "(0 turns it off)")
    min_count: int = cfg.opt(1, "train only tokens that occur at least this often in the corpus")
    batch_size: int = cfg.opt(0, "(centre, context) pairs per step; 0 picks by device (4096 on a CPU, where "
                                 "pairs are applied one by one; on a GPU 32768 for 100 dims, 8192 for 384)")
    context: ContextInit = cfg.opt("tied", "context vectors: 'tied' (the matrix itself, one table for both roles), "
                                   "a 'copy' of the matrix trained apart, or small 'random' values")
    unknown: UnknownPolicy = cfg.opt("skip", "corpus pieces the vocabulary lacks: 'skip' them or map them to the "
                                   "'unk' token")
    cjk_chars: bool = cfg.opt(False, "word vocabularies: split CJK text into single characters")
    text_column: str | None = cfg.opt(None, "column (key) holding the text in a .csv/.tsv/.jsonl corpus")
    watch: tuple[str, ...] = cfg.opt((), "words whose drift and neighbours are tracked per epoch (default: "
                                         "the corpus's most frequent words)")
    watch_size: int = cfg.opt(8, "how many frequent words to watch when no watch words are given")
    neighbours: int = cfg.opt(5, "nearest neighbours listed per watched word and epoch")
    device: DevicePreference = cfg.opt("auto", "'auto' (CUDA, then MPS, then CPU), or 'cuda'/'mps'/'cpu'")
    threads: int = cfg.opt(1, "CPU threads for torch during the run; its steps are small, so 1 is "
                               "usually fastest (0 leaves torch's setting)")
    seed: int = cfg.opt(0, "random seed; the same seed gives the same result on CPU")

    def validate(self) -> None:
        """Check every field.

        Raises:
            ParameterError: naming the first bad field and its rule.
        """
        cfg.check_int("epochs", self.epochs, 1, 1000)
        cfg.check_int("window", self.window, 1, 100)
        cfg.check_int("negatives", self.negatives, 1, 100)
        cfg.check_float("lr", self.lr, 0.0, 10.0, lo_open=True)
        cfg.check_float("min_lr", self.min_lr, 0.0, float(self.lr))
        cfg.check_float("subsample", self.subsample, 0.0, 1.0)
        cfg.check_int("min_count", self.min_count, 1)
        cfg.check_int("batch_size", self.batch_size, 0, 1 << 22)
        cfg.check_choice("context", self.context, CONTEXT_INITS)
        cfg.check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        if not isinstance(self.cjk_chars, bool):
            raise ParameterError(f"cjk_chars={self.cjk_chars!r}: must be true or false")
        if self.text_column is not None and (not isinstance(self.text_column, str) or not self.text_column):
            raise ParameterError(f"text_column={self.text_column!r}: must be a column name")
        cfg.check_words("watch", self.watch)
        cfg.check_int("watch_size", self.watch_size, 0, 100)
        cfg.check_int("neighbours", self.neighbours, 1, 100)
        cfg.check_choice("device", self.device, DEVICE_CHOICES)
        cfg.check_int("threads", self.threads, 0, 1024)
        cfg.check_int("seed", self.seed, 0, 2**63 - 1)

    def to_json(self) -> dict[str, Any]:
        return cfg.to_json(self)


@dataclass
class TrainResult:
    """What a training run produced: the trained rows and everything the run card records.

    Attributes:
        rows: the matrix rows that were trained (sorted); every other row is unchanged.
        vectors: their new values (float32, one per row in ``rows``).
        device: where it ran; autocast: the autocast dtype, if any.
        steps, epochs_run, tokens_seen, duration_s: how much work was done.
        curves: ``loss_curve`` and ``grad_norm`` (see :meth:`Monitor.curves`).
        epochs: per-epoch numbers (mean loss, validation scores, ...).
        watch: the watch list (cosine to the start and neighbours per epoch).
        metrics: objective-specific results.
        distributed: world size, backend, how ranks agreed, and each rank's tokens and tokens/s.
    """

    objective: cfg.Objective
    rows: np.ndarray
    vectors: np.ndarray
    device: str
    autocast: str | None
    steps: int
    epochs_run: int
    tokens_seen: int
    duration_s: float
    curves: dict[str, Any]
    epochs: list[dict[str, Any]]
    watch: dict[str, Any]
    metrics: dict[str, Any]
    distributed: dict[str, Any] | None = None

    def apply(self, m: EmbeddingMatrix) -> np.ndarray:
        """A float32 copy of ``m.vectors`` with the trained rows replaced."""
        out = np.array(m.vectors, dtype=np.float32, copy=True)
        out[self.rows] = self.vectors
        return out


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (0: leave the setting alone)."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _auto_batch(dim: int, negatives: int, device: Device, pairs_per_epoch: float) -> int:
    """Pairs per step. On a CPU the compiled loop applies pairs one by one, so a step only needs to be long
    enough to hide the per-step overhead (negative draws, bookkeeping), and short enough that an epoch has
    at least 32 steps (the learning-rate schedule and the loss curve need them). Elsewhere, enough that a
    step's B × (K + 1) × dim intermediates stay near 64 MiB."""
    if device.kind == "cpu":
        b = max(pairs_per_epoch / 32, 64.0)
        return int(min(2 ** math.floor(math.log2(b)), _CPU_BATCH))
    target = (1 << 19) * 32
    b = target / ((negatives + 1) * dim)
    return int(min(max(2 ** round(math.log2(max(b, 1.0))), 64), 1 << 17))


class _Step:
    """One SGNS update on a batch of pairs, with buffers reused across steps (fresh large allocations cost
    more than the arithmetic on a CPU)."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor, tied: bool, batch: int, negatives: int,
                 device: Device) -> None:
        self.w_in, self.w_out, self.tied = w_in, w_out, tied
        self.k = negatives
        self.device = device
        d = w_in.shape[1]
        kw: dict[str, Any] = {"device": w_in.device, "dtype": torch.float32}
        self.vc = torch.empty(batch, d, **kw)
        self.vo = torch.empty(batch * (negatives + 1), d, **kw)
        self.go = torch.empty(batch, negatives + 1, d, **kw)
        self.label = torch.zeros(negatives + 1, **kw)
        self.label[0] = 1.0
        self.sign = 1.0 - 2.0 * self.label  # softplus(-s) for the positive, softplus(s) for negatives

    def __call__(self, centres: torch.Tensor, targets: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the tables for ``centres`` (B) against ``targets`` (B × (1 + K): context, then negatives).

        Returns:
            the batch's mean loss and the L2 norm of the gradient on the embedding rows (0-d tensors).
        """
        b, kk = targets.shape
        d = self.w_in.shape[1]
        flat = targets.reshape(-1)
        vc = torch.index_select(self.w_in, 0, centres, out=self.vc[:b])
        vo = torch.index_select(self.w_out, 0, flat, out=self.vo[:b * kk]).view(b, kk, d)
        with self.device.autocast():
            s = torch.matmul(vc.unsqueeze(1), vo.transpose(1, 2)).squeeze(1).float()
        # word2vec skips a negative that happens to be the positive context itself
        valid = torch.ones_like(s)
        valid[:, 1:] = (targets[:, 1:] != targets[:, :1]).to(s.dtype)
        loss = (F.softplus(s * self.sign) * valid).sum(1).mean()
        # dLoss/dscore, already scaled by -lr: index_add_ with alpha= is several times slower on CPU
        g = (torch.sigmoid(s) - self.label).mul_(valid).mul_(-lr)
        with self.device.autocast():
            gc = torch.matmul(g.unsqueeze(1), vo).squeeze(1).float()
        go = torch.mul(g.unsqueeze(2), vc.unsqueeze(1), out=self.go[:b]).view(b * kk, d)
        if self.tied:
            # one table: coalesce both roles so the norm is the norm of the whole gradient
            rows, inv = torch.unique(torch.cat([centres, flat]), return_inverse=True)
            step = torch.zeros(rows.shape[0], d, device=gc.device, dtype=gc.dtype)
            step.index_add_(0, inv, torch.cat([gc, go]))
            self.w_in.index_add_(0, rows, step)
            return loss, torch.linalg.vector_norm(step) / lr
        rows, inv = torch.unique(centres, return_inverse=True)
        step = torch.zeros(rows.shape[0], d, device=gc.device, dtype=gc.dtype)
        step.index_add_(0, inv, gc)
        self.w_in.index_add_(0, rows, step)
        self.w_out.index_add_(0, flat, go)
        return loss, torch.linalg.vector_norm(step) / lr


def train_sgns(m: EmbeddingMatrix, corpus: Corpus, config: SGNSConfig | None = None, *,
               progress: ProgressFn | None = None, cancel: CancelFn | None = None,
               on_update: UpdateFn | None = None, dist: Dist | None = None,
               device: Device | None = None) -> TrainResult:
    """Continue skip-gram training of ``m`` on ``corpus``; returns the trained rows (``m`` is not changed).

    Args:
        m: the matrix; its rows are the centre vectors' starting point.
        corpus: the tokenised corpus (:func:`core.corpus.load_corpus`), tokenised with ``m``.
        config: the settings (validated here first).
        progress, cancel: see :mod:`core.progress`; ``on_update`` receives :class:`TrainingUpdate` objects.
        dist: this rank's place in a distributed run (:mod:`core.finetune.distributed`); every rank passes
            the whole corpus and trains on its share of the documents. Default: one process.
        device: the device chosen for this rank (default: :func:`choose_device` of ``config.device``).

    Raises:
        ParameterError: a bad setting (naming it), no token left after ``min_count``, or fewer documents
            than ranks.
        TrainingDiverged: the loss became NaN or infinite (the step is in the message).
        Cancelled: through ``cancel``.
    """
    config = config or SGNSConfig()
    config.validate()
    check_ids(m, corpus.ids, "corpus")
    device = device or choose_device(config.device)
    watch_items = resolve_watch(m, config.watch) if config.watch else None
    with torch_threads(config.threads):
        return _train(m, corpus, config, device, watch_items, progress, cancel, on_update, dist or SINGLE)


def _train(m: EmbeddingMatrix, corpus: Corpus, config: SGNSConfig, device: Device, watch_items: Any,
           progress: ProgressFn | None, cancel: CancelFn | None, on_update: UpdateFn | None,
           dist: Dist) -> TrainResult:
    t_start = time.perf_counter()
    rows_all, inv = np.unique(corpus.ids, return_inverse=True)
    counts_all = np.bincount(inv, minlength=rows_all.shape[0])
    frequent = counts_all >= config.min_count
    if not frequent.any():
        raise ParameterError(f"min_count={config.min_count}: no token occurs that often in the corpus "
                             f"(the most frequent occurs {int(counts_all.max())} times)")
    doc_of = np.repeat(np.arange(corpus.documents, dtype=np.int64), np.diff(corpus.offsets))
    keep_pos = frequent[inv]
    rows = rows_all[frequent]
    remap = np.cumsum(frequent) - 1
    tok_np = remap[inv[keep_pos]].astype(np.int64)
    doc_np = doc_of[keep_pos]
    # Every rank builds the same table, counts and sampling tables from the whole corpus, then trains on
    # its own share of the documents.
    counts = counts_all[frequent]
    if dist.active:
        n_docs = int(np.unique(doc_np).shape[0])
        lo, hi = shard_bounds(doc_np, n_docs, dist.world_size)[dist.rank]
        tok_np, doc_np = tok_np[lo:hi], doc_np[lo:hi]
    n_tok, dim = int(tok_np.shape[0]), m.dim

    dev = device.torch_device
    # Ranks draw different pairs and negatives; rank 0 draws what a single process would.
    seed = int(config.seed) + 7919 * dist.rank
    gen = device.generator(seed)
    cpu_gen = torch.Generator().manual_seed(int(config.seed))
    # Both tables live in one buffer, so a distributed sync is one collective call.
    start_rows = torch.from_numpy(np.array(m.vectors[rows], dtype=np.float32))
    if config.context == "tied":
        both = start_rows.unsqueeze(0)
    elif config.context == "copy":
        both = torch.stack([start_rows, start_rows])
    else:
        both = torch.stack([start_rows, (torch.rand(rows.shape[0], dim, generator=cpu_gen) - 0.5) / dim])
    both = both.to(dev).contiguous()
    w_in, w_out = both[0], both[-1]
    keep_p_np = keep_probability(counts, config.subsample)
    keep_p = torch.from_numpy(keep_p_np).to(dev)
    table_size = int(np.clip(_NEG_PER_ROW * rows.shape[0], _NEG_MIN, _NEG_MAX))
    neg_table = torch.from_numpy(negative_table(counts, table_size)).to(dev)
    tok = torch.from_numpy(tok_np).to(dev)
    doc = torch.from_numpy(doc_np).to(dev)

    # Expected pairs per epoch: kept tokens × (window + 1); the progress bar and the CPU batch follow it.
    kept = float((keep_p_np[tok_np]).sum())
    pairs_expected = kept * (config.window + 1)
    batch = config.batch_size or _auto_batch(dim, config.negatives, device, pairs_expected)
    step_fn: Any
    if device.kind == "cpu":
        from core.finetune._sgns_kernel import CompiledStep  # numba: imported only when a CPU run needs it

        step_fn = CompiledStep(w_in, w_out)
    else:
        step_fn = _Step(w_in, w_out, config.context == "tied", batch, config.negatives, device)
    per_epoch = max(1, math.ceil(pairs_expected / batch))
    monitor = Monitor(per_epoch * config.epochs, config.epochs, progress, cancel, on_update)
    items = watch_items if watch_items is not None else default_watch(m, corpus.ids, config.watch_size)
    watch = Watch(m, items if dist.is_main else [], rows, k=config.neighbours)
    watch.snapshot(0, w_in.cpu().numpy())
    where = device.name if not dist.active else f"{dist.world_size} processes, {dist.backend}, {device.name}"
    monitor.start(f"training {rows.shape[0]:,} rows on {n_tok:,} tokens × {config.epochs} epochs ({where})")
    cpu0 = time.process_time()

    # Tables as of the last sync: each rank sends what it changed since then, and every rank adds up all
    # the changes (averaging whole tables would halve the step of every row that only one rank touched).
    synced_at = both.clone() if dist.active else both

    def sync() -> None:
        dist.fault_point()
        both.sub_(synced_at)
        dist.sum_(both)
        both.add_(synced_at)
        synced_at.copy_(both)

    lr0, lr1 = config.lr, config.min_lr
    chunk_starts = chunk_bounds(doc_np, CHUNK_TOKENS)
    pairs_total = 0
    tokens_kept_total = 0
    lr = lr0
    for epoch in range(1, config.epochs + 1):
        pairs_epoch = 0
        synced = 0
        for a, b in chunk_starts:
            c, x, kept_n = pairs(tok[a:b], doc[a:b], keep_p, config.window, gen)
            tokens_kept_total += kept_n
            n_pairs = int(c.shape[0])
            pairs_epoch += n_pairs
            chunk_tokens = b - a
            if n_pairs == 0:  # a chunk of one-token documents: nothing to learn from
                monitor.tokens += chunk_tokens
                continue
            n_batches = math.ceil(n_pairs / batch)
            for j in range(n_batches):
                i = j * batch
                within = (a + chunk_tokens * (j + 1) / n_batches) / max(1, n_tok)
                done = min((epoch - 1 + within) / config.epochs, epoch / config.epochs)
                lr = lr0 - (lr0 - lr1) * done
                cb = c[i:i + batch]
                negs = neg_table[torch.randint(neg_table.shape[0], (cb.shape[0], config.negatives),
                                               generator=gen, device=dev)]
                targets = torch.cat([x[i:i + batch].unsqueeze(1), negs.long()], dim=1)
                loss, gnorm = step_fn(cb, targets, lr)
                tokens = round(chunk_tokens * (j + 1) / n_batches) - round(chunk_tokens * j / n_batches)
                monitor.step(loss, gnorm, tokens, epoch, done)
                # the same number of syncs on every rank, at the same shares of each rank's epoch
                while dist.active and synced < SYNCS_PER_EPOCH - 1 and within >= (synced + 1) / SYNCS_PER_EPOCH:
                    sync()
                    synced += 1
            pairs_total += n_pairs
        while dist.active and synced < SYNCS_PER_EPOCH:
            sync()
            synced += 1
        snap = watch.snapshot(epoch, w_in.cpu().numpy())
        stats: dict[str, Any] = {"pairs": pairs_epoch, "lr": round(lr, 8),
                                 "watch_cosine": {r["token"]: r["cosine_to_start"] for r in snap}}
        if dist.active:
            local = monitor.epoch_loss(epoch)
            rank_losses = [r[0] for r in dist.gather([local if local is not None else math.nan], dev)]
            stats["loss"] = float(np.mean(rank_losses))
            stats["rank_losses"] = rank_losses
        monitor.end_epoch(epoch, stats, epoch / config.epochs)

    vectors = w_in.detach().cpu().numpy().astype(np.float32, copy=False)
    curves = monitor.curves()
    losses = curves["loss_curve"]["loss"]
    start_vec = np.asarray(m.vectors[rows], dtype=np.float32)
    changed = int((vectors != start_vec).any(axis=1).sum())
    cos = np.einsum("ij,ij->i", vectors, start_vec) / np.maximum(
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(start_vec, axis=1), 1e-12)
    ep = monitor.epoch_stats
    elapsed = monitor.elapsed
    metrics = {
        "first_epoch_loss": ep[0]["loss"] if ep else None, "final_epoch_loss": ep[-1]["loss"] if ep else None,
        "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
        "trained_rows": int(rows.shape[0]), "rows_changed": changed, "pairs": pairs_total,
        "tokens_after_subsampling": tokens_kept_total, "tokens_dropped_min_count": int((~keep_pos).sum()),
        "mean_cosine_to_start": float(cos.mean()) if cos.size else None,
        "min_cosine_to_start": float(cos.min()) if cos.size else None,
        "batch_size": batch,
    }
    duration = time.perf_counter() - t_start
    metrics["tokens_per_s"] = n_tok * config.epochs / elapsed if elapsed > 0 else None
    cpu_s = time.process_time() - cpu0
    per_rank = dist.gather([n_tok * config.epochs, elapsed, pairs_total, cpu_s], dev)
    tokens_seen = int(sum(r[0] for r in per_rank))
    distributed = {**dist.to_json(), "syncs_per_epoch": SYNCS_PER_EPOCH if dist.active else 0,
                   "sync": "summed row changes" if dist.active else None,
                   "ranks": [{"rank": i, "tokens": int(r[0]), "seconds": round(r[1], 3), "pairs": int(r[2]),
                              "tokens_per_s": r[0] / r[1] if r[1] > 0 else None, "cpu_seconds": round(r[3], 3)}
                             for i, r in enumerate(per_rank)]}
    if dist.active:
        slowest = max(r[1] for r in per_rank)
        metrics["tokens_per_s"] = tokens_seen / slowest if slowest > 0 else None
        metrics["pairs"] = int(sum(r[2] for r in per_rank))
    return TrainResult("sgns", rows.astype(np.int64), vectors, device.name,
                       str(device.autocast_dtype).removeprefix("torch.") if device.autocast_dtype else None,
                       monitor.step_no, config.epochs, tokens_seen, duration, curves, ep,
                       watch.to_json(), metrics, distributed)


__all__ = ["CONTEXT_INITS", "SGNSConfig", "TrainResult", "torch_threads", "train_sgns"]
