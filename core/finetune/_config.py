"""Checks shared by the fine-tuning configs: each error names the field and the rule.

Configs are plain dataclasses (like scikit-learn estimators: construction only stores values); they are
validated up front by ``validate()``, before a corpus is read or a step is taken. Every field carries a
one-line ``help`` in its metadata, which the CLI and the page show.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from core import errors
from core.errors import ParameterError

#: Environment variable naming the runs folder (default ``./runs``).
RUNS_ENV = "EMBEDSCOPE_RUNS"


def runs_root() -> Path:
    """The runs folder: ``$EMBEDSCOPE_RUNS`` or ``./runs``."""
    return Path(os.environ.get(RUNS_ENV) or "runs")

#: The training objectives: domain skip-gram on raw text, or a classifier on labelled texts.
Objective = Literal["sgns", "classify"]


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line help."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def field_help(config_cls: type) -> dict[str, str]:
    """Field name → one-line help of a config dataclass."""
    return {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(config_cls)}


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name}={value!r}: must be a whole number")
    if value < lo or (hi is not None and value > hi):
        rule = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise ParameterError(f"{name}={value}: must be {rule}")


def check_float(name: str, value: object, lo: float, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ParameterError(f"{name}={value!r}: must be a finite number")
    v = float(value)
    bad_lo = v <= lo if lo_open else v < lo
    bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
    if bad_lo or bad_hi:
        left = f"greater than {lo}" if lo_open else f"at least {lo}"
        right = "" if hi is None else (f" and less than {hi}" if hi_open else f" and at most {hi}")
        raise ParameterError(f"{name}={value}: must be {left}{right}")


def check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    errors.check_choice(name, value, choices)


def check_words(name: str, value: object) -> None:
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(w, str) for w in value):
        raise ParameterError(f"{name}={value!r}: must be a list of words")


def to_json(config: Any) -> dict[str, Any]:
    """Every field of a config, JSON-ready (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def from_json(config_cls: type, data: dict[str, Any]) -> Any:
    """A config from its ``to_json`` form (unknown keys are refused, naming them)."""
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    extra = sorted(set(data) - set(names))
    if extra:
        raise ParameterError(f"{', '.join(extra)}: not settings of {config_cls.__name__}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return config_cls(**kwargs)
