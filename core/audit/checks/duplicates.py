"""Duplicate rows: rows exactly equal to another (fail), and groups of rows with cosine above ``cosine`` (warn).

The search is exact and its cost grows with the rows, not with the square of a cluster (see
:mod:`core.audit._neardup`): a cluster of thousands of near-identical rows is one group, reported with its
size and a sample of its tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from core._status import Status
from core.audit._context import Context
from core.audit._neardup import exact_groups, near_groups
from core.audit._shared import na, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.policy import Policy, number
from core.audit.result import Check
from core.matrix import EmbeddingMatrix

_INF = float("inf")
#: A group's tokens and ids in the table: all of them up to this many, else the first ones and a count.
SHOWN = 50
#: Up to this size a group's lowest cosine is over every pair above the threshold; past it, over the pairs
#: that joined the group (a full pairwise pass would be quadratic in the group).
_EXACT_MIN = 512


def _listing(items: Sequence[object], total: int) -> str:
    """The first :data:`SHOWN` items, and how many more there are."""
    text = ", ".join(map(str, items[:SHOWN]))
    return text + f", … ({total - SHOWN} more)" if total > SHOWN else text


def _lowest_cosine(m: EmbeddingMatrix, group: np.ndarray, norms: np.ndarray, low: np.ndarray,
                   threshold: float) -> float:
    if group.size > _EXACT_MIN:
        return float(low[group].min())
    x = np.asarray(m.vectors[group], dtype=np.float64)
    cos = (x @ x.T) / np.outer(norms[group], norms[group])
    pairs = cos[np.triu_indices(group.size, 1)]
    above = pairs[pairs > threshold]
    # a product summed in another order can put an edge exactly at the threshold: then the edges' own cosines
    return float(above.min()) if above.size else float(low[group].min())


def run(ctx: Context) -> Check:
    m, scan, policy = ctx.m, ctx.scan, ctx.policy
    pol = policy.section("duplicates")
    threshold = policy.num("duplicates", "cosine")
    if int(scan.good.sum()) < 2:
        return na("duplicates", policy, "fewer than two finite, non-zero rows to compare")
    exact = exact_groups(m, scan)
    keep = scan.good.copy()
    for g in exact:
        keep[g[1:]] = False  # one row stands for its equal group
    reps = np.flatnonzero(keep)
    found: list[np.ndarray] = []
    low = np.ones(len(m))
    if reps.size >= 2:
        found, low = near_groups(m, reps, scan.norms, threshold, ctx.sample.directions, ctx.stage)
    near = [[int(r) for r in g] for g in found]
    rows = [{"group": i + 1, "kind": "exact", "size": len(g), "tokens": _listing(tokens_of(m, g[:SHOWN]), len(g)),
             "ids": _listing(g, len(g)), "min cosine": 1.0} for i, g in enumerate(exact)]
    rows += [{"group": len(exact) + i + 1, "kind": "near", "size": int(g.size),
              "tokens": _listing(tokens_of(m, g[:SHOWN]), g.size), "ids": _listing(list(g), g.size),
              "min cosine": _lowest_cosine(m, g, scan.norms, low, threshold)} for i, g in enumerate(found)]
    table = pd.DataFrame(rows, columns=["group", "kind", "size", "tokens", "ids", "min cosine"])
    max_exact = policy.num("duplicates", "max_exact_groups")
    max_near = policy.num("duplicates", "max_near_groups")
    # Equal padding rows past the tokenizer are never looked up: worth a look, not damage.
    padding = [g for g in exact if m.unassigned_from is not None and min(g) >= m.unassigned_from]
    damage = len(exact) - len(padding)
    status: Status = "fail" if damage > max_exact else "warn" if (len(near) > max_near or padding) else "pass"
    evidence = [r for g in exact + near for r in g]
    if not exact and not near:
        reason = f"no two rows are equal or closer than cosine {threshold:g}"
    else:
        reason = (f"{len(exact)} groups of exactly equal rows ({sum(len(g) for g in exact)} rows) and "
                  f"{len(near)} groups of near-duplicates (cosine > {threshold:g})")
        if near and max(len(g) for g in near) > SHOWN:
            reason += f"; the largest near-duplicate group has {max(len(g) for g in near)} rows"
        if padding:
            reason += f"; {len(padding)} of the equal groups are padding rows no token reaches"
    check = Check("duplicates", status, float(len(exact) + len(near)), pol, reason, tokens_of(m, evidence),
                  tuple(evidence), data={"groups": table, "exact": exact, "near": near})
    under = ctx.results.get("undertrained")
    return _undertrained_groups(m, check, under, policy) if under is not None else check


def _undertrained_groups(m: EmbeddingMatrix, dup: Check, under: Check, policy: Policy) -> Check:
    """Equal groups made only of under-trained tokens are a warning, not damage (see the premise)."""
    exact: list[list[int]] = dup.data.get("exact", [])
    flagged = set(under.ids)
    idle = [g for g in exact if all(r in flagged for r in g)]
    if dup.status != "fail" or not idle:
        return dup
    padding = [g for g in exact if m.unassigned_from is not None and min(g) >= m.unassigned_from]
    damage = len(exact) - len(padding) - len([g for g in idle if g not in padding])
    if damage > policy.num("duplicates", "max_exact_groups"):
        return dup
    rows = sum(len(g) for g in idle)
    return replace(dup, status="warn", reason=(
        f"{dup.reason}; all {len(idle)} of the equal groups ({rows} rows) are under-trained tokens that training "
        "left at one point (see Under-trained tokens), not a copy of trained rows"
        if len(idle) == len(exact) - len(padding) else
        f"{dup.reason}; {len(idle)} of the equal groups ({rows} rows) are under-trained tokens"))


SPEC = register(CheckSpec(
    id="duplicates", title="Duplicate rows", unit="groups",
    premise="Two trained tokens with the same row cannot be told apart, which points to a copy or merge bug. "
            "Rows of never-trained tokens that training left at one point are not that: when every row "
            "of an equal group is an under-trained token, the group is a warning.",
    defaults={"cosine": 0.999, "max_exact_groups": 0, "max_near_groups": 0},
    rules={"cosine": number(0, 1, lo_open=True), "max_exact_groups": number(0, _INF, True),
           "max_near_groups": number(0, _INF, True)},
    run=run, order=20, step=60, weight=0.55, label="searching near-duplicates",
))
