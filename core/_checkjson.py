"""The JSON entry of one check, as the audit's and the release gate's ``checks[]`` both write it.

A light module (no pandas, no analysis) so that :mod:`core.gate` can use it without importing the audit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class CheckLike(Protocol):
    """What a check's JSON is made from (:class:`core.audit.Check` and :class:`core.gate.GateCheck`)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def threshold(self) -> Mapping[str, Any]: ...
    @property
    def title(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def tokens(self) -> Sequence[str]: ...


def finite(v: float | None) -> float | None:
    """``v`` as a float, or None when it is missing, NaN or infinite (JSON has no NaN)."""
    return None if v is None or not math.isfinite(v) else float(v)


def check_json(c: CheckLike, max_tokens: int = 200, unit: str | None = None) -> dict[str, Any]:
    """The keys every check's entry has, in their order: the first ``max_tokens`` evidence tokens and their
    ``count``; ``unit`` goes after the title when given (the audit's entries have one)."""
    out: dict[str, Any] = {"id": c.id, "status": c.status, "value": finite(c.value),
                           "threshold": dict(c.threshold), "tokens": list(c.tokens[:max_tokens]), "title": c.title}
    if unit is not None:
        out["unit"] = unit
    out["reason"] = c.reason
    out["count"] = len(c.tokens)
    return out
