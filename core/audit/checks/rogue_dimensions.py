"""Rogue dimensions, after Timkey & van Schijndel (2021): each dimension's share of the expected cosine of
random pairs, E[cos] = sum_i E[u_i v_i], and of the expected squared cosine (which also catches a centred
dimension that decides every cosine's sign without moving the mean). A dimension over ``fail_above`` swamps
every cosine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.audit._context import Context
from core.audit._shared import na, status_above, tokens_of, unit_rows
from core.audit._spec import CheckSpec, register
from core.audit.checks.anisotropy import _CONE, static_cone
from core.audit.policy import number
from core.audit.result import Check

_INF = float("inf")


def run(ctx: Context) -> Check:
    m, scan, sample, policy = ctx.m, ctx.scan, ctx.sample, ctx.policy
    pol = policy.section("rogue_dimensions")
    n, d = int(scan.good.sum()), m.dim
    if d < policy.num("rogue_dimensions", "min_dims"):
        return na("rogue_dimensions", policy, f"{d} dimensions; with so few, every dimension carries a large share "
                                               f"(needs at least {int(policy.num('rogue_dimensions', 'min_dims'))})")
    if n < policy.num("rogue_dimensions", "min_rows") or sample.rows.size < 2:
        return na("rogue_dimensions", policy, f"{n} finite non-zero rows; too few pairs to share out the cosine")
    # Timkey & van Schijndel: CC_i = E[u_i v_i] over pairs of distinct unit rows, exact from sums.
    cc = (scan.unit_sum ** 2 - scan.unit_sq) / (n * (n - 1))
    mean_cos = float(cc.sum())
    use_cc = mean_cos >= policy.num("rogue_dimensions", "min_mean_cosine")
    cc_share = cc / mean_cos if use_cc else np.full(d, np.nan)
    e2 = float(sample.cos2_contrib.sum())
    cos2_share = sample.cos2_contrib / e2 if e2 > 0 else np.zeros(d)
    share = np.fmax(np.nan_to_num(cc_share, nan=-np.inf), cos2_share)
    warn, fail = policy.num("rogue_dimensions", "warn_above"), policy.num("rogue_dimensions", "fail_above")
    order = np.argsort(-share, kind="stable")
    value = float(share[order[0]])
    flagged = [int(i) for i in order if share[i] > warn]
    handful = int(policy.num("rogue_dimensions", "handful"))
    top_sum = float(share[order[:handful]].sum())
    status = status_above(value, warn, fail)
    if status == "pass" and top_sum > fail:
        status, flagged = "warn", [int(i) for i in order[:handful]]
    evidence: list[int] = []
    if flagged:
        # The rows that lean hardest on the flagged dimensions show what they do to cosines.
        u = unit_rows(m, sample.rows, scan.norms)[:, flagged]
        strength = np.abs(u).max(axis=1)
        evidence = [int(sample.rows[i]) for i in np.argsort(-strength, kind="stable")[:10]]
    table = pd.DataFrame({"dim": np.arange(d), "share": share, "cos_share": cc_share, "cos2_share": cos2_share,
                          "contribution": cc, "flagged": np.isin(np.arange(d), flagged)})
    if d > 4096:
        table = table.iloc[np.sort(order[:4096])].reset_index(drop=True)
    top = ", ".join(f"{i} ({share[i]:.0%})" for i in order[:3])
    if status == "pass":
        reason = (f"no dimension dominates: the largest shares are {top} (a uniform share is {1 / d:.2%}); "
                  f"mean cosine {mean_cos:.3f}")
    else:
        reason = (f"dimension(s) {', '.join(map(str, flagged))} carry {top_sum if len(flagged) > 1 else value:.0%} of "
                  f"the cosine between random rows (threshold {warn:g} warn, {fail:g} fail); "
                  "these dimensions swamp every similarity")
    return Check("rogue_dimensions", status, value, pol, reason, tokens_of(m, evidence), tuple(evidence),
                 tuple(flagged), data={"dims": table, "mean_cosine": mean_cos, "warn": warn, "fail": fail})



SPEC = register(CheckSpec(
    id="rogue_dimensions", title="Rogue dimensions", unit="largest share",
    premise="A few dimensions that carry most of the cosine between random rows swamp every similarity "
            "(Timkey & van Schijndel 2021, for transformer models). Static word vectors share the "
            "common direction of their cone by construction, so for them the check does not apply.",
    defaults={"warn_above": 0.2, "fail_above": 0.5, "handful": 3, "min_mean_cosine": 0.05, "min_dims": 8,
              "min_rows": 10},
    rules={"warn_above": number(0, 1), "fail_above": number(0, 1), "handful": number(1, 1000, True),
           "min_mean_cosine": number(0, 1), "min_dims": number(2, _INF, True), "min_rows": number(2, _INF, True)},
    run=run, order=60, step=30, weight=0.01, label="rogue dimensions",
    families=_CONE, why_not=static_cone,
))
