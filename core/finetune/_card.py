"""The run card: what a fine-tune did, as one typed object that reads and writes ``run.json``.

:meth:`RunCard.to_json` gives the file's content key for key and in the same order (``run.json`` and the
CLI's ``finetune --json`` are a public contract); :meth:`RunCard.from_json` reads every card written so far
(cards from before multi-process runs have no ``distributed``: they ran in one process). A card also reads
like its JSON (``card["metrics"]``, ``card.get("distributed")``), as ``Run.card`` did when it was a dict.

The objective-specific parts (config, corpus, epochs, curves, watch list, metrics, distributed) stay JSON
objects: their keys differ by objective and are written by :mod:`core.finetune.sgns` and
:mod:`core.finetune.classify`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from core.errors import FormatError
from core.finetune._config import Objective
from core.jsonsafe import json_safe

#: The run card's format tag.
CARD_FORMAT = "embedscope-run/1"
#: What a finished run's card says of it (a run that fails or is cancelled writes no card).
RunStatus = Literal["completed"]
#: ``distributed`` of a run in one process (and of cards written before runs could use several).
SINGLE_PROCESS: dict[str, Any] = {"world_size": 1, "backend": "none"}

# The card's keys in file order; the curves (``loss_curve``, ``grad_norm``, ``clipping``, ...) sit between
# ``epochs`` and ``watch``.
_HEAD = ("format", "run_id", "objective", "status", "created", "finished", "duration_s", "device", "autocast",
         "seed", "distributed", "config", "source", "corpus", "tokens_seen", "unknown_tokens", "steps",
         "epochs_run", "epochs")
_TAIL = ("watch", "metrics", "output", "versions")
_OPTIONAL = {"distributed"}


def _need(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise FormatError(f"{where}: no {key!r}; this card is damaged or was not written by Embedscope")
    return data[key]


@dataclass(frozen=True)
class RunSource:
    """The matrix a run started from, as it was opened (the card's ``source``)."""

    path: str | None
    format: str
    tensor: str | None
    dtype: str
    shape: tuple[int, int]
    fingerprint: str
    vocab_source: str | None
    tokenizer: str
    parent_run: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "tensor": self.tensor, "dtype": self.dtype,
                "shape": list(self.shape), "fingerprint": self.fingerprint, "vocab_source": self.vocab_source,
                "tokenizer": self.tokenizer, "parent_run": self.parent_run}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "run card") -> RunSource:
        where = f"{where}: source"
        shape = _need(data, "shape", where)
        return cls(path=_need(data, "path", where), format=_need(data, "format", where),
                   tensor=data.get("tensor"), dtype=_need(data, "dtype", where),
                   shape=(int(shape[0]), int(shape[1])), fingerprint=_need(data, "fingerprint", where),
                   vocab_source=data.get("vocab_source"), tokenizer=_need(data, "tokenizer", where),
                   parent_run=data.get("parent_run"))


@dataclass(frozen=True)
class RunOutput:
    """What a run wrote (the card's ``output``); the folder, files and fingerprint are set once written."""

    rows_trained: int
    rows_changed: int | None
    folder: str | None = None
    tensor: str | None = None
    files: tuple[str, ...] = ()
    shape: tuple[int, int] | None = None
    dtype: str | None = None
    fingerprint: str | None = None

    @property
    def written(self) -> bool:
        return self.folder is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows_trained": self.rows_trained, "rows_changed": self.rows_changed}
        if self.written:
            out.update(folder=self.folder, tensor=self.tensor, files=list(self.files),
                       shape=None if self.shape is None else list(self.shape), dtype=self.dtype,
                       fingerprint=self.fingerprint)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "run card") -> RunOutput:
        shape = data.get("shape")
        return cls(rows_trained=_need(data, "rows_trained", f"{where}: output"), rows_changed=data.get("rows_changed"),
                   folder=data.get("folder"), tensor=data.get("tensor"), files=tuple(data.get("files") or ()),
                   shape=None if shape is None else (int(shape[0]), int(shape[1])), dtype=data.get("dtype"),
                   fingerprint=data.get("fingerprint"))


@dataclass(frozen=True, eq=False)
class RunCard(Mapping[str, Any]):
    """A run card: the objective, every setting, the data, the curves, the metrics and the output.

    Attributes:
        run_id: the run folder's name; objective: "sgns" or "classify"; status: "completed".
        created, finished: UTC ISO times; duration_s: wall seconds; device, autocast: where and how it ran.
        seed: the config's seed; distributed: world size, backend, how ranks agreed, each rank's throughput.
        config: every setting (``config_from_card`` makes the config object again).
        source: the matrix it started from; corpus: the data (path, digest, sizes, unknown pieces, ...).
        tokens_seen, unknown_tokens, steps, epochs_run: how much work was done; epochs: per-epoch numbers.
        curves: ``loss_curve``, ``grad_norm`` and, for a classifier, ``clipping`` (any other key an older or
            newer card carries is kept here too, in its place).
        watch: the watch list per epoch; metrics: objective-specific results; output: what was written;
        versions: embedscope, torch and python.

    Equality compares the JSON content, so a card equals the dict ``json.load`` reads from its file.
    """

    run_id: str
    objective: Objective
    created: str
    finished: str
    duration_s: float
    device: str
    autocast: str | None
    seed: int
    config: dict[str, Any]
    source: RunSource
    corpus: dict[str, Any]
    tokens_seen: int
    unknown_tokens: int
    steps: int
    epochs_run: int
    epochs: list[dict[str, Any]]
    curves: dict[str, Any]
    watch: dict[str, Any]
    metrics: dict[str, Any]
    output: RunOutput
    versions: dict[str, str]
    distributed: dict[str, Any] = field(default_factory=lambda: dict(SINGLE_PROCESS))
    status: RunStatus = "completed"
    format: str = CARD_FORMAT

    # -- the JSON form -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The card as ``run.json`` holds it (JSON-safe: NaN/Inf become null, numpy values plain ones)."""
        return json_safe({key: self[key] for key in self})

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "run card") -> RunCard:
        """The card ``data`` (a parsed ``run.json``) describes.

        Raises:
            FormatError: not a run card, or a key it must have is missing (naming ``where`` and the key).
        """
        if not isinstance(data, Mapping) or data.get("format") != CARD_FORMAT:
            raise FormatError(f"{where}: not an Embedscope run card (format {CARD_FORMAT!r} expected)")
        objective = _need(data, "objective", where)
        if objective not in get_args(Objective):
            raise FormatError(f"{where}: objective {objective!r} is not one of {', '.join(get_args(Objective))}")
        known = {*_HEAD, *_TAIL}
        values = {k: _need(data, k, where) for k in known if k not in _OPTIONAL}
        return cls(
            run_id=values["run_id"], objective=objective, status=values["status"], created=values["created"],
            finished=values["finished"], duration_s=values["duration_s"], device=values["device"],
            autocast=values["autocast"], seed=values["seed"],
            distributed=dict(data.get("distributed") or SINGLE_PROCESS), config=dict(values["config"]),
            source=RunSource.from_json(values["source"], where), corpus=dict(values["corpus"]),
            tokens_seen=values["tokens_seen"], unknown_tokens=values["unknown_tokens"], steps=values["steps"],
            epochs_run=values["epochs_run"], epochs=list(values["epochs"]),
            curves={k: v for k, v in data.items() if k not in known}, watch=dict(values["watch"]),
            metrics=dict(values["metrics"]), output=RunOutput.from_json(values["output"], where),
            versions=dict(values["versions"]), format=values["format"])

    # -- read like the JSON ------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in self.curves:
            return self.curves[key]
        if key not in _HEAD and key not in _TAIL:
            raise KeyError(key)
        value = getattr(self, key)
        return value.to_json() if isinstance(value, (RunSource, RunOutput)) else value

    def __iter__(self) -> Iterator[str]:
        return iter((*_HEAD, *self.curves, *_TAIL))

    def __len__(self) -> int:
        return len(_HEAD) + len(self.curves) + len(_TAIL)

    def __repr__(self) -> str:
        return f"RunCard(run_id={self.run_id!r}, objective={self.objective!r}, created={self.created!r})"

    # -- what the faces read -----------------------------------------------------------------------
    @property
    def world_size(self) -> int:
        """How many processes trained (1 for a card written before runs could use several)."""
        return int(self.distributed.get("world_size", 1))


__all__ = ["CARD_FORMAT", "SINGLE_PROCESS", "RunCard", "RunOutput", "RunSource", "RunStatus"]
