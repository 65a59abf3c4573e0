"""What an audit returns: one :class:`Check` per check and the :class:`AuditReport` that holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core._checkjson import check_json, finite
from core._status import FAIL_ON, SEVERITY, STATUSES, Status, worst_of
from core.audit._spec import PolicyValue, spec, specs
from core.audit.policy import Policy
from core.errors import ParameterError, check_choice

__all__ = ["STATUSES", "AuditReport", "Check", "Status"]


@dataclass(frozen=True)
class Check:
    """The result of one check.

    Attributes:
        id: one of :data:`CHECKS`.
        status: "pass", "warn", "fail" or "n/a".
        value: the measured number the status comes from (see :data:`UNITS`), or None when n/a.
        threshold: the policy settings the status was decided with.
        tokens: the evidence: the tokens that show the problem (all of them; the JSON keeps the first 200).
        ids: their rows.
        reason: one sentence saying why the status is what it is.
        dims: for rogue dimensions, the flagged dimensions.
        data: small tables for the charts and the report (pandas DataFrames and numbers).
    """

    id: str
    status: Status
    value: float | None
    threshold: dict[str, PolicyValue]
    reason: str
    tokens: tuple[str, ...] = ()
    ids: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def title(self) -> str:
        return spec(self.id).title

    @property
    def unit(self) -> str:
        return spec(self.id).unit

    @property
    def premise(self) -> str:
        """What the check assumes, and for which models that holds."""
        return spec(self.id).premise

    def to_json(self, max_tokens: int = 200) -> dict[str, Any]:
        """The ``checks[]`` entry of ``embedscope audit --json``."""
        out = check_json(self, max_tokens, unit=self.unit)
        out["ids"] = list(self.ids[:max_tokens])
        out["premise"] = self.premise
        if self.id == "rogue_dimensions":
            out["dims"] = list(self.dims)
        return out


@dataclass(frozen=True)
class AuditReport:
    """Every check's result for one matrix, with the under-trained candidates.

    Attributes:
        source: what was audited (the path, or "demo").
        shape: rows × dimensions.
        checks: one :class:`Check` per id in :data:`CHECKS`, in that order.
        undertrained: candidates, most under-trained first: token, id, score, z, category, kind.
        policy: the thresholds used.
        method: how under-trained tokens were scored.
        seconds: how long the audit took.
        family: the kind of model ("static", "encoder", "decoder", "unknown"), which decides where each
            check's premise holds (:data:`PREMISES`); family_source: what said so.
    """

    source: str
    shape: tuple[int, int]
    checks: tuple[Check, ...]
    undertrained: pd.DataFrame = field(compare=False, repr=False)
    policy: Policy = field(default_factory=Policy)
    method: str = ""
    seconds: float = 0.0
    family: str = "unknown"
    family_source: str = ""

    def check(self, check_id: str) -> Check:
        """The result of one check.

        Raises:
            ParameterError: an unknown id.
        """
        for c in self.checks:
            if c.id == check_id:
                return c
        raise ParameterError(f"check={check_id!r}: must be one of {', '.join(s.id for s in specs())}")

    @property
    def statuses(self) -> dict[str, Status]:
        return {c.id: c.status for c in self.checks}

    def summary(self) -> dict[str, int]:
        """How many checks passed, warned, failed, or did not apply."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            counts[c.status] += 1
        return counts

    @property
    def worst(self) -> Status:
        """The most severe status ("pass" when nothing warned or failed)."""
        return worst_of(c.status for c in self.checks)

    def reaches(self, level: str) -> bool:
        """Whether any check is at ``level`` ("fail" or "warn") or worse.

        Raises:
            ParameterError: ``level`` is not "fail" or "warn".
        """
        return SEVERITY[self.worst] >= SEVERITY[check_choice("fail_on", level, FAIL_ON, "must be 'fail' or 'warn'")]

    def to_json(self, max_tokens: int = 200) -> dict[str, Any]:
        """The ``embedscope audit --json`` object (the keys are a public contract)."""
        cands = self.undertrained
        return {
            "source": self.source,
            "checks": [c.to_json(max_tokens) for c in self.checks],
            "undertrained": [{"token": str(t), "id": int(i), "score": finite(float(s)), "category": str(cat)}
                             for t, i, s, cat in zip(cands["token"], cands["id"], cands["score"],
                                                     cands["category"], strict=True)],
            "summary": self.summary(),
            "shape": list(self.shape),
            "method": self.method,
            "policy": self.policy.source,
            "seconds": round(self.seconds, 3),
            "family": self.family,
            "family_source": self.family_source,
        }
