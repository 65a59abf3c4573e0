"""Numerical damage: rows holding NaN or Inf, and all-zero rows (zero padding rows past the tokenizer left out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.audit._context import Context
from core.audit._shared import status_above, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check

_INF = float("inf")


def run(ctx: Context) -> Check:
    m, scan, policy = ctx.m, ctx.scan, ctx.policy
    pol = policy.section("numerical")
    zero = scan.zero_rows.copy()
    padding_zero = np.zeros_like(zero)
    if m.unassigned_from is not None:
        # Zero rows past the tokenizer's vocabulary are padding no token can reach: noted, not damage.
        padding_zero[m.unassigned_from:] = zero[m.unassigned_from:]
        zero[m.unassigned_from:] = False
    bad = np.flatnonzero(scan.nan_rows | scan.inf_rows | zero)
    problem = np.where(scan.nan_rows[bad], "NaN", np.where(scan.inf_rows[bad], "Inf", "all zeros"))
    table = pd.DataFrame({"token": tokens_of(m, bad), "id": bad, "problem": problem})
    value = len(bad)
    status = status_above(value, policy.num("numerical", "warn_above"), policy.num("numerical", "fail_above"))
    parts = [f"{int(scan.nan_rows.sum())} rows with NaN", f"{int(scan.inf_rows.sum())} with Inf",
             f"{int(zero.sum())} all-zero"]
    reason = ("no NaN, Inf or all-zero rows" if not value else ", ".join(parts) +
              " (these rows break every similarity they enter)")
    if padding_zero.any():
        reason += f"; {int(padding_zero.sum())} zero padding rows past the tokenizer are not counted"
    return Check("numerical", status, float(value), pol, reason, tokens_of(m, bad), tuple(int(i) for i in bad),
                 data={"rows": table})



SPEC = register(CheckSpec(
    id="numerical", title="Numerical damage", unit="rows",
    premise="A NaN, Inf or all-zero row breaks every similarity it enters, in every kind of model.",
    defaults={"warn_above": 0, "fail_above": 0},
    rules={"warn_above": number(0, _INF, True), "fail_above": number(0, _INF, True)},
    run=run, order=10, step=10, weight=0.01, label="numerical damage",
))
