"""``audit()``: one scan, one sample, then every registered check in run order."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

from core._family import model_family
from core.audit._context import Context
from core.audit._shared import Stage, na, sample_pairs, scan_rows
from core.audit._spec import specs
from core.audit.policy import Policy
from core.audit.result import AuditReport, Check
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

__all__ = ["audit"]

_EMPTY: dict[str, list[object]] = {"token": [], "id": [], "score": [], "z": [], "category": [], "kind": []}


def audit(
    m: EmbeddingMatrix,
    policy: Policy | None = None,
    *,
    source: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> AuditReport:
    """Run every check on ``m``.

    Memory stays at a few blocks besides the matrix: rows are read in chunks, the near-duplicate search
    works block by block, and anisotropy's distribution and the squared-cosine shares use a seeded sample.

    Args:
        m: the matrix.
        policy: thresholds (default: :data:`~core.audit.DEFAULTS`).
        source: what to call the matrix in the report (default: its path).
        progress: called with the fraction done and a message.
        cancel: returns True to stop.

    Raises:
        Cancelled: ``cancel`` said stop.
    """
    policy = policy or Policy()
    family, family_source = _family(m, policy)
    rep = Reporter(progress, cancel)
    t0 = time.perf_counter()
    rng = np.random.default_rng(int(policy.num("anisotropy", "seed")))
    rep(0.0, "reading rows")
    scan = scan_rows(m, Stage(rep, 0.0, 0.2, "reading rows"))
    sample = sample_pairs(m, scan, policy, rng, Stage(rep, 0.2, 0.3, "sampling pairs"))
    ctx = Context(m, policy, scan, sample, rng, family, family_source, Stage(rep, 0.3, 0.3, ""))
    every = specs()
    todo = sorted((s for s in every if policy.get(s.id, "enabled")), key=lambda s: s.step)
    total = sum(s.weight for s in todo) or 1.0
    at = 0.3
    for spec in todo:
        span = 0.7 * spec.weight / total
        rep(at, spec.label)
        ctx.stage = Stage(rep, at, at + span, spec.label)
        check = spec.run(ctx)
        if spec.families is not None and family not in spec.families and spec.why_not is not None:
            check = _applies(check, spec.why_not(family, family_source))
        ctx.results[spec.id] = check
        at += span
    checks = tuple(ctx.results.get(s.id) or na(s.id, policy, "turned off by the policy") for s in every)
    under = ctx.results.get("undertrained")
    table = under.data.get("candidates") if under is not None else None
    method = str(under.data.get("method", "")) if under is not None else ""
    rep(1.0, "done")
    name = source or m.provenance.path or m.provenance.format
    return AuditReport(name, m.shape, checks, table if table is not None else pd.DataFrame(_EMPTY), policy,
                       method, time.perf_counter() - t0, family, family_source)


def _family(m: EmbeddingMatrix, policy: Policy) -> tuple[str, str]:
    chosen = str(policy.get("model", "family"))
    return model_family(m) if chosen == "auto" else (chosen, f"[model] family = {chosen!r} in {policy.source}")


def _applies(check: Check, why_not: str) -> Check:
    """``check`` as "n/a", saying why its premise does not hold for this model (what it measured stays)."""
    if check.status == "n/a":
        return check
    measured = f"{check.value:.3g}" if check.value is not None else "—"
    return replace(check, status="n/a", value=None, tokens=(), ids=(),
                   reason=f"does not apply: {why_not}. Measured anyway ({check.unit} {measured}): {check.reason}")
