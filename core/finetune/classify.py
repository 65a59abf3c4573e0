"""Supervised fine-tuning: the embedding inside a small text classifier, trained on labelled rows.

The model is an ``EmbeddingBag`` (mean of a text's token vectors), initialised from the matrix, and a
linear head. The embedding learns with its own, lower learning rate (a separate optimizer parameter
group), stays frozen for the first ``freeze_epochs`` epochs while the head settles, and is then unfrozen.
Gradients are clipped to a global norm; AdamW applies weight decay; a stratified validation split drives
early stopping (patience counted from the unfreeze) and the best epoch's weights are kept.

The frozen baseline is the same model trained the same way with the embedding frozen throughout;
scikit-learn's ``classification_report`` is given for both on the validation split.

Only rows of tokens that occur in the labelled texts are in the trained table; every other row of the
matrix comes out bit for bit as it went in.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.corpus import UNKNOWN_POLICIES, TextSource, UnknownPolicy, tokenize_texts
from core.errors import FormatError, ParameterError
from core.finetune import _config as cfg
from core.finetune._monitor import Monitor, UpdateFn, Watch, check_ids, default_watch, downsample, resolve_watch
from core.finetune.devices import DEVICE_CHOICES, Device, DevicePreference, choose_device
from core.finetune.distributed import SINGLE, Dist
from core.finetune.sgns import TrainResult, torch_threads
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter


@dataclass
class ClassifyConfig:
    """Settings of a supervised fine-tune (validated by :meth:`validate`, which names the field)."""

    objective: ClassVar[cfg.Objective] = "classify"

    text_column: str = cfg.opt("text", "column (key) holding the text")
    label_column: str = cfg.opt("label", "column (key) holding the label")
    epochs: int = cfg.opt(12, "most passes over the training split (early stopping may end sooner)")
    freeze_epochs: int = cfg.opt(2, "epochs with the embedding frozen (only the head learns), then unfrozen")
    lr_head: float = cfg.opt(0.01, "learning rate of the linear head")
    lr_embedding: float = cfg.opt(0.001, "learning rate of the embedding (lower than the head's)")
    weight_decay: float = cfg.opt(0.0001, "AdamW weight decay, for the head and the embedding")
    max_grad_norm: float = cfg.opt(1.0, "clip the global gradient norm to this value (0 turns it off)")
    batch_size: int = cfg.opt(32, "texts per step")
    val_fraction: float = cfg.opt(0.2, "share of the rows held out (stratified) for validation")
    patience: int = cfg.opt(3, "stop after this many epochs without a better validation loss (after "
                               "the unfreeze)")
    unknown: UnknownPolicy = cfg.opt("skip", "text pieces the vocabulary lacks: 'skip' them or map them to the 'unk' "
                                   "token")
    cjk_chars: bool = cfg.opt(False, "word vocabularies: split CJK text into single characters")
    watch: tuple[str, ...] = cfg.opt((), "words whose drift and neighbours are tracked per epoch (default: "
                                         "the texts' most frequent words)")
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
        for name in ("text_column", "label_column"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise ParameterError(f"{name}={v!r}: must be a column name")
        if self.text_column == self.label_column:
            raise ParameterError(f"label_column={self.label_column!r}: must differ from text_column")
        cfg.check_int("epochs", self.epochs, 1, 1000)
        cfg.check_int("freeze_epochs", self.freeze_epochs, 0, self.epochs)
        cfg.check_float("lr_head", self.lr_head, 0.0, 10.0, lo_open=True)
        cfg.check_float("lr_embedding", self.lr_embedding, 0.0, 10.0)
        cfg.check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        cfg.check_float("max_grad_norm", self.max_grad_norm, 0.0)
        cfg.check_int("batch_size", self.batch_size, 1, 1 << 16)
        cfg.check_float("val_fraction", self.val_fraction, 0.0, 0.9, lo_open=True)
        cfg.check_int("patience", self.patience, 1, 1000)
        cfg.check_choice("unknown", self.unknown, UNKNOWN_POLICIES)
        if not isinstance(self.cjk_chars, bool):
            raise ParameterError(f"cjk_chars={self.cjk_chars!r}: must be true or false")
        cfg.check_words("watch", self.watch)
        cfg.check_int("watch_size", self.watch_size, 0, 100)
        cfg.check_int("neighbours", self.neighbours, 1, 100)
        cfg.check_choice("device", self.device, DEVICE_CHOICES)
        cfg.check_int("threads", self.threads, 0, 1024)
        cfg.check_int("seed", self.seed, 0, 2**63 - 1)

    def to_json(self) -> dict[str, Any]:
        return cfg.to_json(self)


@dataclass(frozen=True)
class LabelledData:
    """Texts tokenised into matrix rows, with their labels.

    Attributes:
        ids, offsets: rows of every text, concatenated, and where each text starts (plus the end).
        labels: class index of every text; classes: the class names, sorted.
        unknown, unknown_examples: pieces the vocabulary lacks (see ``unknown_policy``).
        source: the file.
    """

    ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    unknown: int
    unknown_examples: tuple[tuple[str, int], ...]
    unknown_policy: str
    source: TextSource
    tokenizer: str = "words"

    @property
    def texts(self) -> int:
        return int(self.labels.shape[0])

    @property
    def tokens(self) -> int:
        return int(self.ids.shape[0])

    def to_json(self) -> dict[str, Any]:
        """The run card's ``corpus`` entry."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        lengths = np.diff(self.offsets)
        return {
            "path": self.source.path, "digest": self.source.digest, "bytes": self.source.bytes,
            "column": self.source.column, "documents": self.texts, "tokens": self.tokens,
            "distinct_tokens": int(np.unique(self.ids).shape[0]) if self.tokens else 0,
            "unknown": self.unknown, "unknown_policy": self.unknown_policy,
            "unknown_examples": [[t, c] for t, c in self.unknown_examples],
            "empty_documents": int((lengths == 0).sum()), "tokenizer": self.tokenizer,
            "classes": {c: int(n) for c, n in zip(self.classes, counts, strict=True)},
        }


def prepare(m: EmbeddingMatrix, texts: list[str], labels: list[str], *, unknown: UnknownPolicy = "skip",
            cjk_chars: bool = False, source: TextSource | None = None) -> LabelledData:
    """Tokenise labelled texts and check the labels.

    Raises:
        FormatError: a single class, or labels with only one example (naming them), or no known token.
    """
    where = source.path if source and source.path else "the labelled data"
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "")
        raise FormatError(f"{where}: every row has the label {only!r}; classification needs at least two classes")
    single = sorted(lab for lab, n in counts.items() if n < 2)
    if single:
        shown = ", ".join(repr(s) for s in single[:10]) + (" ..." if len(single) > 10 else "")
        raise FormatError(f"{where}: label(s) {shown} have only one example; every label needs at least two "
                          "(one to train on, one to validate); add rows or drop those labels")
    ids, offsets, missing = tokenize_texts(m, texts, unknown=unknown, cjk_chars=cjk_chars)
    if ids.shape[0] == 0:
        raise FormatError(f"{where}: none of the {len(texts)} texts has a token in the vocabulary")
    classes = tuple(sorted(counts))
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[lab] for lab in labels], dtype=np.int64)
    src = source or TextSource("", "", 0, len(texts))
    return LabelledData(ids, offsets, y, classes, int(sum(missing.values())), tuple(missing.most_common(10)),
                        unknown, src, m.tokenizer.scheme)


class _BagClassifier(nn.Module):
    """Mean of the token vectors (an EmbeddingBag) → linear head."""

    def __init__(self, table: torch.Tensor, n_classes: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag.from_pretrained(table, freeze=False, mode="mean")
        self.head = nn.Linear(table.shape[1], n_classes)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.embedding(ids, offsets))
        return out


def _batch(ids: np.ndarray, offsets: np.ndarray, docs: np.ndarray,
           dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [ids[offsets[d]:offsets[d + 1]] for d in docs]
    lengths = np.fromiter((p.shape[0] for p in parts), dtype=np.int64, count=len(parts))
    flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return torch.from_numpy(flat).to(dev), torch.from_numpy(starts).to(dev)


@dataclass
class _Split:
    ids: np.ndarray  # compact rows
    offsets: np.ndarray
    train: np.ndarray
    val: np.ndarray
    y: np.ndarray


def _split(data: LabelledData, compact: np.ndarray, config: ClassifyConfig) -> _Split:
    from sklearn.model_selection import train_test_split

    n, k = data.texts, len(data.classes)
    n_val = math.ceil(config.val_fraction * n)
    if n_val < k or n - n_val < k:
        raise ParameterError(f"val_fraction={config.val_fraction}: with {n} rows and {k} classes the validation "
                             f"split would hold {n_val} rows and training {n - n_val}; each needs at least one row "
                             f"per class ({k}); change val_fraction or add rows")
    train, val = train_test_split(np.arange(n), test_size=n_val, stratify=data.labels, random_state=config.seed % 2**32)
    return _Split(compact, data.offsets, np.sort(train), np.sort(val), data.labels)


def _evaluate(model: _BagClassifier, split: _Split, docs: np.ndarray, device: Device,
              batch: int = 512) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and predictions over ``docs``."""
    model.eval()
    preds, total = [], 0.0
    with torch.no_grad():
        for s in range(0, docs.shape[0], batch):
            part = docs[s:s + batch]
            ids, offs = _batch(split.ids, split.offsets, part, device.torch_device)
            with device.autocast():
                logits = model(ids, offs).float()
            y = torch.from_numpy(split.y[part]).to(device.torch_device)
            total += float(F.cross_entropy(logits, y, reduction="sum"))
            preds.append(logits.argmax(1).cpu().numpy())
    model.train()
    return total / max(1, docs.shape[0]), np.concatenate(preds) if preds else np.zeros(0, np.int64)


def _report(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    from sklearn.metrics import classification_report

    labels = list(range(len(classes)))
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), output_dict=True,
                                   zero_division=0)
    text = classification_report(y_true, y_pred, labels=labels, target_names=list(classes), zero_division=0)
    return {"macro_f1": float(report["macro avg"]["f1-score"]),
            "weighted_f1": float(report["weighted avg"]["f1-score"]),
            "accuracy": float(report.get("accuracy", float(np.mean(y_true == y_pred)))),
            "report": report, "text": text}


def _set_frozen(model: _BagClassifier, frozen: bool) -> None:
    model.embedding.weight.requires_grad_(not frozen)
    if frozen:
        model.embedding.weight.grad = None


def _fit(model: _BagClassifier, split: _Split, config: ClassifyConfig, device: Device, *, freeze_epochs: int,
         gen: np.random.Generator, monitor: Monitor | None, report: Reporter, watch: Watch | None,
         frac0: float, frac1: float, clip_log: list[tuple[int, float, float]] | None,
         dist: Dist = SINGLE) -> dict[str, Any]:
    """Train with early stopping; restore the best epoch. Returns the epoch history and the best epoch.

    In a distributed run every rank draws the same order, takes its share of each batch, and the gradients
    are summed over ranks before clipping and the step (as DDP does), so all ranks hold the same model.
    """
    from sklearn.metrics import f1_score

    opt = torch.optim.AdamW([
        {"params": [model.embedding.weight], "lr": config.lr_embedding, "name": "embedding"},
        {"params": list(model.head.parameters()), "lr": config.lr_head, "name": "head"},
    ], weight_decay=config.weight_decay)
    best_loss, best_state, best_epoch, waited = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    history: list[dict[str, Any]] = []
    steps_per_epoch = math.ceil(split.train.shape[0] / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    step = 0
    stopped_early = False
    for epoch in range(1, config.epochs + 1):
        frozen = epoch <= freeze_epochs
        _set_frozen(model, frozen)
        order = gen.permutation(split.train)
        for s in range(0, order.shape[0], config.batch_size):
            docs = order[s:s + config.batch_size]
            if dist.active:
                loss, n_tokens = _shared_backward(model, opt, split, docs, device, dist)
            else:
                ids, offs = _batch(split.ids, split.offsets, docs, device.torch_device)
                y = torch.from_numpy(split.y[docs]).to(device.torch_device)
                with device.autocast():
                    logits = model(ids, offs).float()
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                n_tokens = int(ids.shape[0])
            emb_grad = model.embedding.weight.grad
            emb_norm = (torch.linalg.vector_norm(emb_grad) if emb_grad is not None
                        else torch.zeros((), device=device.torch_device))
            params = [p for p in model.parameters() if p.grad is not None]
            if config.max_grad_norm > 0:
                before = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            else:
                before = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params
                                                               if p.grad is not None]))
            if clip_log is not None:
                after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params
                                                              if p.grad is not None]))
                clip_log.append((step + 1, float(before), float(after)))
            opt.step()
            step += 1
            frac = frac0 + (frac1 - frac0) * step / total_steps
            if monitor is not None:
                monitor.step(loss, emb_norm, n_tokens, epoch, frac)
            elif step % 20 == 0:
                report(frac, f"frozen baseline: epoch {epoch}/{config.epochs}")
        val_loss, pred = _evaluate(model, split, split.val, device)
        f1 = float(f1_score(split.y[split.val], pred, average="macro", zero_division=0))
        row = {"val_loss": val_loss, "val_macro_f1": f1, "embedding_frozen": frozen,
               "lr": {g["name"]: g["lr"] for g in opt.param_groups}}
        improved = val_loss < best_loss - 1e-9
        if improved:
            best_loss, best_state, best_epoch = val_loss, copy.deepcopy(model.state_dict()), epoch
            waited = 0
        elif not frozen:
            waited += 1
        if monitor is not None:
            if watch is not None:
                snap = watch.snapshot(epoch, model.embedding.weight.detach().float().cpu().numpy())
                row["watch_cosine"] = {r["token"]: r["cosine_to_start"] for r in snap}
            monitor.end_epoch(epoch, row, frac0 + (frac1 - frac0) * epoch / config.epochs)
        history.append({"epoch": epoch, **row})
        if not frozen and waited >= config.patience:
            stopped_early = epoch < config.epochs
            break
    model.load_state_dict(best_state)
    return {"history": history, "best_epoch": best_epoch, "best_val_loss": best_loss,
            "stopped_early": stopped_early, "epochs_run": len(history), "steps": step}


def _shared_backward(model: _BagClassifier, opt: torch.optim.Optimizer, split: _Split, docs: np.ndarray,
                     device: Device, dist: Dist) -> tuple[torch.Tensor, int]:
    """This rank's share of a batch, forward and backward, then the gradients and loss summed over ranks.

    Each rank's loss is its texts' summed cross-entropy over the whole batch's size, so the sum over ranks
    is the batch's mean loss and its gradient, whatever the split.

    Returns:
        the batch's mean loss (0-d) and the tokens of this rank's texts.
    """
    mine = docs[dist.rank::dist.world_size]
    opt.zero_grad(set_to_none=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_tokens = 0
    if mine.shape[0]:
        ids, offs = _batch(split.ids, split.offsets, mine, device.torch_device)
        y = torch.from_numpy(split.y[mine]).to(device.torch_device)
        with device.autocast():
            logits = model(ids, offs).float()
        loss = F.cross_entropy(logits, y, reduction="sum") / docs.shape[0]
        loss.backward()
        n_tokens = int(ids.shape[0])
    else:
        loss = torch.zeros((), device=device.torch_device)
    for p in trainable:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    # one all-reduce per step: every gradient and the loss in one flat buffer
    flat = torch.cat([p.grad.reshape(-1) for p in trainable if p.grad is not None] + [loss.detach().reshape(1)])
    dist.sum_(flat)
    at = 0
    for p in trainable:
        assert p.grad is not None
        n = p.grad.numel()
        p.grad.copy_(flat[at:at + n].view_as(p.grad))
        at += n
    return flat[-1], n_tokens


def train_classifier(m: EmbeddingMatrix, data: LabelledData, config: ClassifyConfig | None = None, *,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                     on_update: UpdateFn | None = None, dist: Dist | None = None,
                     device: Device | None = None) -> TrainResult:
    """Fine-tune ``m`` inside a mean-pooled classifier on ``data``; returns the trained rows.

    ``dist`` and ``device``: as in :func:`core.finetune.sgns.train_sgns` (every rank passes all the data).

    Raises:
        ParameterError: a bad setting (naming it), or a validation split too small for the classes.
        TrainingDiverged: the loss became NaN or infinite.
        Cancelled: through ``cancel``.
    """
    config = config or ClassifyConfig()
    config.validate()
    check_ids(m, data.ids, "data")
    device = device or choose_device(config.device)
    watch_items = resolve_watch(m, config.watch) if config.watch else None
    with torch_threads(config.threads):
        return _train(m, data, config, device, watch_items, progress, cancel, on_update, dist or SINGLE)


def _train(m: EmbeddingMatrix, data: LabelledData, config: ClassifyConfig, device: Device, watch_items: Any,
           progress: ProgressFn | None, cancel: CancelFn | None, on_update: UpdateFn | None,
           dist: Dist) -> TrainResult:
    t0 = time.perf_counter()
    rows, compact = np.unique(data.ids, return_inverse=True)
    split = _split(data, compact.astype(np.int64), config)
    if dist.active and split.train.shape[0] < dist.world_size:
        raise ParameterError(f"data: {split.train.shape[0]} training text(s) for {dist.world_size} processes; each "
                             f"process needs at least one: use --nproc {split.train.shape[0]} or fewer, or more "
                             "labelled rows")
    table = torch.from_numpy(np.array(m.vectors[rows], dtype=np.float32))
    n_classes = len(data.classes)
    report = Reporter(progress, cancel)
    steps_per_epoch = math.ceil(split.train.shape[0] / config.batch_size)
    base_share = 0.2  # of the progress bar: the head-only baseline is cheap

    # The frozen baseline: same model, same seed, the embedding never unfrozen.
    torch.manual_seed(config.seed)
    baseline = _BagClassifier(table.clone(), n_classes).to(device.torch_device)
    report(0.0, "training the frozen baseline")
    base_fit = _fit(baseline, split, config, device, freeze_epochs=config.epochs,
                    gen=np.random.default_rng(config.seed), monitor=None, report=report, watch=None,
                    frac0=0.0, frac1=base_share, clip_log=None, dist=dist)
    _, base_pred = _evaluate(baseline, split, split.val, device)
    base_report = _report(split.y[split.val], base_pred, data.classes)
    del baseline

    torch.manual_seed(config.seed)
    model = _BagClassifier(table.clone(), n_classes).to(device.torch_device)
    monitor = Monitor(steps_per_epoch * config.epochs, config.epochs, progress, cancel, on_update)
    items = watch_items if watch_items is not None else default_watch(m, data.ids, config.watch_size)
    watch = Watch(m, items if dist.is_main else [], rows, k=config.neighbours)
    watch.snapshot(0, table.numpy())
    monitor.start(f"fine-tuning {rows.shape[0]:,} rows on {split.train.shape[0]:,} texts ({device.name})")
    clip_log: list[tuple[int, float, float]] = []
    fit = _fit(model, split, config, device, freeze_epochs=config.freeze_epochs,
               gen=np.random.default_rng(config.seed), monitor=monitor, report=report, watch=watch,
               frac0=base_share, frac1=1.0, clip_log=clip_log, dist=dist)
    _, pred = _evaluate(model, split, split.val, device)
    tuned_report = _report(split.y[split.val], pred, data.classes)

    vectors = model.embedding.weight.detach().float().cpu().numpy()
    curves = monitor.curves()
    cs, cb = downsample([c[1] for c in clip_log], [c[0] for c in clip_log])
    _, ca = downsample([c[2] for c in clip_log], [c[0] for c in clip_log])
    curves["clipping"] = {"step": cs, "before": cb, "after": ca, "max_grad_norm": config.max_grad_norm}
    start = np.asarray(m.vectors[rows], dtype=np.float32)
    changed = int((vectors != start).any(axis=1).sum())
    metrics = {
        "classes": list(data.classes), "train_size": int(split.train.shape[0]), "val_size": int(split.val.shape[0]),
        "baseline": base_report, "finetuned": tuned_report,
        "baseline_macro_f1": base_report["macro_f1"], "finetuned_macro_f1": tuned_report["macro_f1"],
        "best_epoch": fit["best_epoch"], "best_val_loss": fit["best_val_loss"],
        "baseline_best_epoch": base_fit["best_epoch"], "stopped_early": fit["stopped_early"],
        "trained_rows": int(rows.shape[0]), "rows_changed": changed,
        "param_groups": {"embedding": config.lr_embedding, "head": config.lr_head},
    }
    tokens_seen = int(np.diff(data.offsets)[split.train].sum()) * fit["epochs_run"]
    elapsed = monitor.elapsed
    per_rank = dist.gather([monitor.tokens, elapsed], device.torch_device)
    distributed = {**dist.to_json(), "sync": "gradient all-reduce" if dist.active else None,
                   "ranks": [{"rank": i, "tokens": int(r[0]), "seconds": round(r[1], 3),
                              "tokens_per_s": r[0] / r[1] if r[1] > 0 else None} for i, r in enumerate(per_rank)]}
    return TrainResult("classify", rows.astype(np.int64), vectors, device.name,
                       str(device.autocast_dtype).removeprefix("torch.") if device.autocast_dtype else None,
                       monitor.step_no, fit["epochs_run"], tokens_seen, time.perf_counter() - t0, curves,
                       monitor.epoch_stats, watch.to_json(), metrics, distributed)


__all__ = ["ClassifyConfig", "LabelledData", "prepare", "train_classifier"]
