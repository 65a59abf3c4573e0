"""Fine-tuning: domain skip-gram (SGNS) on a raw corpus, or the embedding inside a small classifier.

Both objectives train only the rows of tokens that occur in the data (every other row comes out bit for
bit as it went in), run on CUDA when present (then MPS, then CPU), report progress and honour a cancel
check, and write a NEW folder that opens like any other matrix, with a ``run.json`` run card.

    >>> import core
    >>> from core import finetune
    >>> m = core.load("demo")
    >>> run = finetune.finetune(m, finetune.demo_corpus(), finetune.SGNSConfig(epochs=2), "runs/finance")
    >>> run.card.metrics["final_epoch_loss"] < run.card.metrics["first_epoch_loss"]   # a typed RunCard
    True
    >>> tuned = core.load("runs/finance")                        # same vocabulary, fine-tuned rows
    >>> finetune.list_runs("runs")[0].summary()["objective"]
    'sgns'

On several processes (one per GPU, or per CPU core), through torchrun: ``embedscope finetune ... --nproc 4``,
``finetune.launch(...)``, or ``torchrun --nproc-per-node 4 -m core.finetune ...`` (see
:mod:`core.finetune.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core._lazy import lazy_names

if TYPE_CHECKING:
    from core.corpus import Corpus, load_corpus, read_labelled, read_texts, tokenize
    from core.finetune._card import RunCard, RunOutput, RunSource
    from core.finetune._config import RUNS_ENV, Objective, runs_root
    from core.finetune._monitor import TrainingDiverged, TrainingUpdate, UpdateFn
    from core.finetune.classify import ClassifyConfig, LabelledData, prepare, train_classifier
    from core.finetune.devices import Device, choose_device
    from core.finetune.distributed import RankFailed, launch, processes_offered
    from core.finetune.runs import (
        OBJECTIVES,
        RUN_FILE,
        Run,
        config_for,
        config_from_card,
        default_out,
        finetune,
        list_runs,
        load_run,
        new_run_id,
        read_data,
        safe_name,
    )
    from core.finetune.sgns import SGNSConfig, TrainResult, train_sgns

#: Where each public name lives. Names are imported when first used, so a process that only asks for
#: :func:`runs_root` (the dashboard, at every page) does not import torch.
_HOMES: dict[str, str] = {
    **dict.fromkeys(['Corpus', 'load_corpus', 'read_labelled', 'read_texts', 'tokenize'], 'core.corpus'),
    **dict.fromkeys(['RunCard', 'RunOutput', 'RunSource'], 'core.finetune._card'),
    **dict.fromkeys(['RUNS_ENV', 'Objective', 'runs_root'], 'core.finetune._config'),
    **dict.fromkeys(['TrainingDiverged', 'TrainingUpdate', 'UpdateFn'], 'core.finetune._monitor'),
    **dict.fromkeys(['ClassifyConfig', 'LabelledData', 'prepare', 'train_classifier'], 'core.finetune.classify'),
    **dict.fromkeys(['Device', 'choose_device'], 'core.finetune.devices'),
    **dict.fromkeys(['RankFailed', 'launch', 'processes_offered'], 'core.finetune.distributed'),
    **dict.fromkeys(['OBJECTIVES', 'RUN_FILE', 'Run', 'config_for', 'config_from_card', 'default_out', 'finetune',
                     'list_runs', 'load_run', 'new_run_id', 'read_data', 'safe_name'], 'core.finetune.runs'),
    **dict.fromkeys(['SGNSConfig', 'TrainResult', 'train_sgns'], 'core.finetune.sgns'),
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())

_DATA = Path(__file__).resolve().parent.parent / "data"


def demo_corpus() -> Path:
    """The bundled finance-news corpus (English, a few Chinese lines), one document a line."""
    return _DATA / "finance_corpus.txt"


def demo_labels() -> Path:
    """The bundled labelled finance headlines (CSV with ``text`` and ``label``: 4 classes)."""
    return _DATA / "finance_labels.csv"


__all__ = [
    "OBJECTIVES",
    "RUNS_ENV",
    "RUN_FILE",
    "ClassifyConfig",
    "Corpus",
    "Device",
    "LabelledData",
    "Objective",
    "RankFailed",
    "Run",
    "RunCard",
    "RunOutput",
    "RunSource",
    "SGNSConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingUpdate",
    "UpdateFn",
    "choose_device",
    "config_for",
    "config_from_card",
    "default_out",
    "demo_corpus",
    "demo_labels",
    "finetune",
    "launch",
    "list_runs",
    "load_corpus",
    "load_run",
    "new_run_id",
    "prepare",
    "processes_offered",
    "read_data",
    "read_labelled",
    "read_texts",
    "runs_root",
    "safe_name",
    "tokenize",
    "train_classifier",
    "train_sgns",
]
