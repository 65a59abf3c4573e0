"""Runs: train, then write a NEW folder atomically — the fine-tuned matrix, its tokenizer, and ``run.json``.

The folder opens in Embedscope like any other matrix (``core.load(folder)``)::

    <out>/
      model.safetensors   the fine-tuned matrix (float32) under the source's tensor name
      config.json         the source's config (or {"vocab_size": rows}), so the tensor is found
      tokenizer.json ...  the source's tokenizer files, copied; or vocab.json for a word vocabulary
      run.json            the run card: objective, every setting, corpus digest, curves, metrics, ...

Nothing is written until training has finished: a cancelled run, a NaN loss or any error leaves no folder
(and no temp folder) behind. Earlier runs are listed from a runs folder (``$EMBEDSCOPE_RUNS``, default
``./runs``) by :func:`list_runs`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np

from core._io import atomic_dir, check_target
from core.corpus import Corpus, load_corpus, read_labelled
from core.errors import FormatError, ParameterError
from core.finetune import _config as cfg
from core.finetune._card import CARD_FORMAT, SINGLE_PROCESS, RunCard, RunOutput, RunSource
from core.finetune._config import RUNS_ENV, Objective, runs_root
from core.finetune._monitor import UpdateFn
from core.finetune.classify import ClassifyConfig, LabelledData, prepare, train_classifier
from core.finetune.devices import Device
from core.finetune.distributed import Dist
from core.finetune.sgns import SGNSConfig, TrainResult, train_sgns
from core.loaders import _safetensors
from core.loaders._common import write_vocab_json
from core.loaders._safetensors import write_tensors
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn

#: The run card's file name (its format tag is :data:`CARD_FORMAT`).
RUN_FILE = "run.json"
#: The safetensors file of a run's output (the name every safetensors folder Embedscope writes uses).
WEIGHTS_FILE = _safetensors.WEIGHTS_FILE
#: Tensor name used when the source format has none (word2vec, GloVe, .npy, TSV).
DEFAULT_TENSOR = "embeddings"
#: Tokenizer files copied from a Hugging Face source folder.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)

Config = SGNSConfig | ClassifyConfig


def config_for(objective: str, **settings: Any) -> Config:
    """The config of ``objective`` ("sgns" or "classify") with ``settings``.

    Raises:
        ParameterError: an unknown objective or setting (naming it).
    """
    cls: type[SGNSConfig] | type[ClassifyConfig]
    if objective == "sgns":
        cls = SGNSConfig
    elif objective == "classify":
        cls = ClassifyConfig
    else:
        raise ParameterError(f"objective={objective!r}: must be one of {', '.join(OBJECTIVES)}")
    config: Config = cfg.from_json(cls, settings)
    return config


def config_from_card(card: RunCard | Mapping[str, Any]) -> Config:
    """The config a run card records (so a run can be repeated or checked); also takes a parsed ``run.json``."""
    return config_for(str(card.get("objective")), **dict(card.get("config") or {}))


@dataclass(frozen=True)
class Run:
    """A finished run: its folder and its card (``run.json``, read)."""

    path: Path
    card: RunCard

    @property
    def run_id(self) -> str:
        return self.card.run_id

    @property
    def objective(self) -> Objective:
        return self.card.objective

    @property
    def created(self) -> str:
        return self.card.created

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.card.metrics)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.card.config)

    def summary(self) -> dict[str, Any]:
        """One flat row for a table of runs: when, what, on which data, and the headline numbers."""
        c, mt = self.card, self.metrics
        src = str(c.source.path or "")
        row: dict[str, Any] = {
            "run": self.run_id, "objective": self.objective, "created": self.created[:19].replace("T", " "),
            "source": Path(src).name or src, "corpus": Path(str(c.corpus.get("path", ""))).name,
            "epochs": c.epochs_run, "tokens seen": c.tokens_seen, "duration s": round(float(c.duration_s or 0), 1),
            "device": c.device,
        }
        if self.objective == "sgns":
            row["final loss"] = _round(mt.get("final_epoch_loss"))
            row["mean cos to start"] = _round(mt.get("mean_cosine_to_start"))
        else:
            row["baseline macro-F1"] = _round(mt.get("baseline_macro_f1"))
            row["fine-tuned macro-F1"] = _round(mt.get("finetuned_macro_f1"))
        row["folder"] = str(self.path)
        return row


def _round(v: Any, nd: int = 4) -> Any:
    return round(float(v), nd) if isinstance(v, (int, float)) and math.isfinite(float(v)) else v


def load_run(folder: str | os.PathLike[str]) -> Run:
    """The run in ``folder`` (its ``run.json``).

    Raises:
        FormatError: no ``run.json`` there, or it is not a run card.
    """
    path = Path(folder)
    card_path = path / RUN_FILE if path.is_dir() else path
    if not card_path.is_file():
        raise FormatError(f"{path}: no {RUN_FILE} here; this is not an Embedscope run folder")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise FormatError(f"{card_path}: not valid JSON ({err})") from err
    return Run(card_path.parent, RunCard.from_json(data, where=str(card_path)))


def list_runs(root: str | os.PathLike[str] | None = None) -> list[Run]:
    """Every run under ``root`` (default :func:`runs_root`), newest first; unreadable folders are skipped."""
    base = Path(root) if root is not None else runs_root()
    if not base.is_dir():
        return []
    runs: list[Run] = []
    for child in base.iterdir():
        if child.name.startswith(".") or not (child / RUN_FILE).is_file():
            continue
        try:
            runs.append(load_run(child))
        except FormatError:
            continue
    runs.sort(key=lambda r: (r.created, r.run_id), reverse=True)
    return runs


def new_run_id(objective: str) -> str:
    """``<objective>-<UTC time>-<4 hex>``, e.g. ``sgns-20260125-101500-3fa2``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{objective}-{stamp}-{os.urandom(2).hex()}"


def default_out(objective: str, root: str | os.PathLike[str] | None = None) -> Path:
    """A new folder name under the runs folder for a run of ``objective``."""
    base = Path(root) if root is not None else runs_root()
    out = base / new_run_id(objective)
    while out.exists():
        out = base / new_run_id(objective)
    return out


# -- source files --------------------------------------------------------------------------------
def _source_folder(m: EmbeddingMatrix) -> Path | None:
    p = m.provenance.path
    if not p:
        return None
    path = Path(p)
    return path if path.is_dir() else path.parent


def _sources(m: EmbeddingMatrix, data_path: str) -> list[str]:
    out = [p for p in (m.provenance.path, data_path) if p]
    folder = _source_folder(m)
    if folder is not None and m.has_tokenizer:
        out.append(str(folder))  # a model folder is the source as a whole
    return out


def _check_out(out: Path, force: bool, sources: list[str]) -> None:
    check_target(out, force, sources)
    if force and out.exists():
        if not out.is_dir():
            raise ParameterError(f"{out}: exists and is not a folder; choose a new path for the run")
        if any(out.iterdir()) and not (out / RUN_FILE).is_file():
            raise ParameterError(f"{out}: exists and is not an earlier run's folder (no {RUN_FILE}); force only "
                                 "replaces earlier runs; choose a new path")


def _tensor_name(m: EmbeddingMatrix) -> str:
    name = m.provenance.tensor or DEFAULT_TENSOR
    return name.split("@", 1)[0]


def _write_vocabulary(m: EmbeddingMatrix, tmp: Path) -> list[str]:
    """Tokenizer files beside the weights so that ``core.load`` finds the same vocabulary."""
    written: list[str] = []
    folder = _source_folder(m)
    if m.has_tokenizer:
        if folder is not None:
            for name in TOKENIZER_FILES:
                if (folder / name).is_file():
                    shutil.copy2(folder / name, tmp / name)
                    written.append(name)
        if not written:
            raw = getattr(m.tokenizer, "_tok", None)  # the tokenizers object: serialise it whole
            if raw is None or not hasattr(raw, "save"):
                raise FormatError(f"{m.provenance.path}: the tokenizer files could not be found to copy")
            raw.save(str(tmp / "tokenizer.json"))
            written.append("tokenizer.json")
        return written
    # A word vocabulary: the plain idx_to_token list (vocab.txt would be read as a WordPiece vocabulary).
    return [write_vocab_json(tmp, m.index_to_key)]


def _write_config(m: EmbeddingMatrix, tmp: Path, tensor: str) -> None:
    from core.loaders._hf import INPUT_NAMES

    config: dict[str, Any] = {}
    folder = _source_folder(m)
    if m.has_tokenizer and folder is not None and (folder / "config.json").is_file():
        try:
            loaded = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            config = loaded if isinstance(loaded, dict) else {}
        except (ValueError, UnicodeDecodeError):
            config = {}
    known = any(tensor == k or tensor.endswith("." + k) for k in INPUT_NAMES)
    if not known or "vocab_size" not in config:
        # the loader finds an embedding it does not know by name through vocab_size
        config["vocab_size"] = len(m)
    (tmp / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")


def write_output(m: EmbeddingMatrix, vectors: np.ndarray, card: RunCard | Mapping[str, Any],
                 out: str | os.PathLike[str], *, force: bool = False, sources: list[str] | None = None) -> Path:
    """Write the fine-tuned matrix, its vocabulary and the run card into a new folder, atomically.

    ``card`` is the card training made (or its JSON form); its ``output`` gains the folder, files and
    fingerprint. The folder is checked by opening it with :func:`core.load` before it takes its final name.

    Raises:
        OutputExistsError: ``out`` exists and ``force`` is not set.
        ParameterError: ``out`` is (or is inside) the source, or ``force`` would replace a folder that is
            not an earlier run.
        FormatError: the written folder does not reopen as the same vocabulary and shape.
    """
    from core.loaders import load

    out = Path(out)
    if not isinstance(card, RunCard):
        card = RunCard.from_json(card)
    srcs = sources if sources is not None else _sources(m, "")
    _check_out(out, force, srcs)
    tensor = _tensor_name(m)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    with atomic_dir(out, force=force, sources=srcs) as tmp:
        write_tensors(tmp / WEIGHTS_FILE, {tensor: vectors}, {"format": "pt", "embedscope_run": card.run_id})
        files = [WEIGHTS_FILE, *_write_vocabulary(m, tmp)]
        _write_config(m, tmp, tensor)
        files.append("config.json")
        reopened = load(tmp)
        if reopened.shape != m.shape or reopened.index_to_key != m.index_to_key:
            raise FormatError(f"{out}: the written matrix does not reopen as the source's vocabulary and shape "
                              f"({reopened.shape} vs {m.shape}); nothing was kept")
        rows, dim = vectors.shape
        card = dataclasses.replace(card, output=dataclasses.replace(
            card.output, folder=str(out.resolve()), tensor=tensor, files=tuple(sorted([*files, RUN_FILE])),
            shape=(int(rows), int(dim)), dtype="float32", fingerprint=reopened.fingerprint))
        (tmp / RUN_FILE).write_text(json.dumps(card.to_json(), indent=1, ensure_ascii=False, allow_nan=False),
                                    encoding="utf-8")
        # the temp folder was made private (mkdtemp); the finished run is an ordinary readable folder
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
    return out


# -- the whole run -------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import torch

    try:
        from importlib.metadata import version

        es = version("embedscope")
    except Exception:  # not installed as a package (a source checkout)
        es = "source"
    return {"embedscope": es, "torch": torch.__version__, "python": platform.python_version()}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_data(m: EmbeddingMatrix, path: str | os.PathLike[str], config: Config) -> Corpus | LabelledData:
    """Read and tokenise the corpus (SGNS) or the labelled file (classification) for ``config``."""
    if isinstance(config, SGNSConfig):
        return load_corpus(m, path, column=config.text_column, unknown=config.unknown, cjk_chars=config.cjk_chars)
    texts, labels, src = read_labelled(path, config.text_column, config.label_column)
    return prepare(m, texts, labels, unknown=config.unknown, cjk_chars=config.cjk_chars, source=src)


def finetune(m: EmbeddingMatrix, data: str | os.PathLike[str] | Corpus | LabelledData, config: Config,
             out: str | os.PathLike[str] | None = None, *, force: bool = False, progress: ProgressFn | None = None,
             cancel: CancelFn | None = None, on_update: UpdateFn | None = None,
             runs: str | os.PathLike[str] | None = None) -> Run:
    """Fine-tune ``m`` and write the result as a new run folder.

    Args:
        m: the source matrix (left unchanged).
        data: the corpus file (SGNS) or labelled file (classification), or the already tokenised data.
        config: :class:`SGNSConfig` or :class:`ClassifyConfig`; it picks the objective.
        out: the new folder (default: a fresh name under ``runs``).
        force: replace ``out`` when it holds an earlier run.
        progress, cancel: see :mod:`core.progress`; ``on_update`` gets :class:`TrainingUpdate` objects.
        runs: the runs folder for the default ``out`` (default ``$EMBEDSCOPE_RUNS`` or ``./runs``).

    Returns:
        the finished :class:`Run`.

    Raises:
        ParameterError: a bad setting or output path; TrainingDiverged: NaN loss; Cancelled: cancelled;
        FormatError: unreadable data; OutputExistsError: ``out`` exists. In every case nothing is written.
    """
    trained = train_run(m, data, config, out, force=force, progress=progress, cancel=cancel, on_update=on_update,
                        runs=runs)
    return trained.write(m, force=force)


@dataclass(frozen=True)
class Trained:
    """A finished training, not yet written: the full matrix, its run card, and where it goes."""

    vectors: np.ndarray
    card: RunCard
    out: Path
    sources: list[str]

    def write(self, m: EmbeddingMatrix, *, force: bool = False) -> Run:
        """Write the run folder (atomically) and return it."""
        return load_run(write_output(m, self.vectors, self.card, self.out, force=force, sources=self.sources))


def train_run(m: EmbeddingMatrix, data: str | os.PathLike[str] | Corpus | LabelledData, config: Config,
              out: str | os.PathLike[str] | None = None, *, force: bool = False, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None, on_update: UpdateFn | None = None,
              runs: str | os.PathLike[str] | None = None, dist: Dist | None = None,
              device: Device | None = None) -> Trained:
    """Everything :func:`finetune` does except writing: checks, training and the run card.

    A distributed rank calls this with its ``dist`` (every rank the same ``out``); rank 0 then writes.
    """
    if not isinstance(config, (SGNSConfig, ClassifyConfig)):
        raise ParameterError(f"config: expected SGNSConfig or ClassifyConfig, got {type(config).__name__}")
    config.validate()
    t0 = time.perf_counter()
    created = _now()
    out_path = Path(out) if out is not None else default_out(config.objective, runs)
    run_id = out_path.name  # the folder's name: what the runs list shows and the page reopens
    data_path = "" if isinstance(data, (Corpus, LabelledData)) else str(data)
    sources = _sources(m, data_path)
    _check_out(out_path, force, sources)  # fail before training, not after
    if isinstance(config, SGNSConfig):
        if isinstance(data, LabelledData):
            raise ParameterError("data: SGNS needs a corpus, not labelled data")
        corpus = data if isinstance(data, Corpus) else read_data(m, data, config)
        assert isinstance(corpus, Corpus)
        result: TrainResult = train_sgns(m, corpus, config, progress=progress, cancel=cancel, on_update=on_update,
                                         dist=dist, device=device)
        data_json = corpus.to_json()
        unknown = corpus.unknown
    else:
        if isinstance(data, Corpus):
            raise ParameterError("data: classification needs labelled data (a text and a label column)")
        labelled = data if isinstance(data, LabelledData) else read_data(m, data, config)
        assert isinstance(labelled, LabelledData)
        result = train_classifier(m, labelled, config, progress=progress, cancel=cancel, on_update=on_update,
                                  dist=dist, device=device)
        data_json = labelled.to_json()
        unknown = labelled.unknown
    vectors = result.apply(m)
    p = m.provenance
    parent = _source_folder(m)
    parent_run = None
    if parent is not None and (parent / RUN_FILE).is_file():
        try:
            parent_run = load_run(parent).run_id
        except FormatError:
            parent_run = None
    curves = dict(result.curves)
    curves["grad_norm"] = {**curves["grad_norm"], "of": "embedding rows, sum over the step's pairs"
                           if config.objective == "sgns" else "embedding, before clipping (0 while frozen)"}
    rows, dim = m.shape
    card = RunCard(
        run_id=run_id, objective=config.objective, created=created, finished=_now(),
        duration_s=round(time.perf_counter() - t0, 3), device=result.device, autocast=result.autocast,
        seed=config.seed, distributed=result.distributed or dict(SINGLE_PROCESS), config=config.to_json(),
        source=RunSource(path=p.path, format=p.format, tensor=p.tensor, dtype=p.dtype, shape=(rows, dim),
                         fingerprint=m.fingerprint, vocab_source=p.vocab_source, tokenizer=m.tokenizer.scheme,
                         parent_run=parent_run),
        corpus=data_json, tokens_seen=result.tokens_seen, unknown_tokens=unknown, steps=result.steps,
        epochs_run=result.epochs_run, epochs=result.epochs, curves=curves, watch=result.watch,
        metrics=result.metrics,
        output=RunOutput(rows_trained=int(result.rows.shape[0]), rows_changed=result.metrics.get("rows_changed")),
        versions=_versions())
    return Trained(vectors, card, out_path, sources)


def safe_name(text: str) -> str:
    """A folder-name-safe version of ``text`` (for run names typed in the UI)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"


__all__ = ["CARD_FORMAT", "DEFAULT_TENSOR", "OBJECTIVES", "RUNS_ENV", "RUN_FILE", "WEIGHTS_FILE", "Run",
           "RunCard", "RunOutput", "RunSource", "config_for", "config_from_card", "default_out", "finetune",
           "list_runs", "load_run", "new_run_id", "read_data", "runs_root", "safe_name", "train_run",
           "write_output", "Trained"]
