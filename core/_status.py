"""The status of a check, shared by the audit and the release gate, and how statuses rank."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, get_args

#: A check's status: it passed, warned, failed, or does not apply to this matrix.
Status = Literal["pass", "warn", "fail", "n/a"]
STATUSES: tuple[Status, ...] = get_args(Status)
#: The status from which a run fails (the ``--fail-on`` of ``audit`` and ``gate``).
FailOn = Literal["fail", "warn"]
FAIL_ON: tuple[FailOn, ...] = get_args(FailOn)
#: How bad each status is ("n/a" counts as a pass).
SEVERITY: Mapping[Status, int] = {"n/a": 0, "pass": 0, "warn": 1, "fail": 2}


def worst_of(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses``: "pass" when none warned or failed."""
    out: Status = "pass"
    for s in statuses:
        if SEVERITY[s] > SEVERITY[out]:
            out = s
    return out


__all__ = ["FAIL_ON", "SEVERITY", "STATUSES", "FailOn", "Status", "worst_of"]
