"""Norm outliers: rows whose L2 norm is far out in either tail (robust z-score, median / MAD, of the log norm)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.audit._context import Context
from core.audit._shared import dropped_note, histogram, na, robust_z, status_above, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check
from core.numfmt import distinct

_INF = float("inf")


def run(ctx: Context) -> Check:
    m, scan, policy = ctx.m, ctx.norm_scan, ctx.policy
    pol = policy.section("norm_outliers")
    idx = np.flatnonzero(scan.good)
    if idx.size < policy.num("norm_outliers", "min_rows"):
        return na("norm_outliers", policy, f"{idx.size} finite non-zero rows; the robust z-score needs at least "
                                            f"{int(policy.num('norm_outliers', 'min_rows'))}")
    logn = np.log(scan.norms[idx])
    z, med, mad = robust_z(logn)
    if mad < 1e-6:
        return na("norm_outliers", policy, "every row has the same norm (an L2-normalised matrix); there is no "
                                            "norm distribution to find outliers in")
    zt = policy.num("norm_outliers", "z")
    out = np.flatnonzero(np.abs(z) > zt)
    order = out[np.argsort(-np.abs(z[out]), kind="stable")]
    ids = idx[order]
    lo, hi = math.exp(med - zt * mad), math.exp(med + zt * mad)
    hist = histogram(scan.norms[idx])
    hist["outlier"] = (hist["end"] <= lo) | (hist["start"] >= hi)
    table = pd.DataFrame({"token": tokens_of(m, ids[:5000]), "id": ids[:5000], "norm": scan.norms[ids[:5000]],
                          "z": z[order[:5000]]})
    value = out.size / idx.size
    status = status_above(value, policy.num("norm_outliers", "warn_above"), policy.num("norm_outliers", "fail_above"))
    low, high = int((z[out] < 0).sum()), int((z[out] > 0).sum())
    # A narrow norm distribution puts both cut-offs near the median: digits enough to tell the three apart.
    lo_s, med_s, hi_s = distinct([lo, math.exp(med), hi])
    reason = (f"no row norm is beyond {zt:g} robust standard deviations (log scale) from the median "
              f"{med_s}" if not out.size else
              f"{low} rows below {lo_s} and {high} above {hi_s} (robust |z| > {zt:g} on log norm, median "
              f"{med_s}); a tail of small norms is common in trained models")
    reason += dropped_note(scan)
    return Check("norm_outliers", status, value, pol, reason, tokens_of(m, ids), tuple(int(i) for i in ids),
                 data={"histogram": hist, "cutoffs": (lo, hi), "outliers": table, "median": math.exp(med)})



SPEC = register(CheckSpec(
    id="norm_outliers", title="Norm outliers", unit="fraction of rows",
    premise="Trained rows have log norms in one bulk; rows far outside it are worth a look. A tail of "
            "small norms (rare or unused tokens) is common, so by default this only warns.",
    defaults={"z": 5.0, "warn_above": 0.0, "fail_above": 1.0, "min_rows": 20},
    rules={"z": number(0, _INF, lo_open=True), "warn_above": number(0, 1), "fail_above": number(0, 1),
           "min_rows": number(3, _INF, True)},
    run=run, order=30, step=40, weight=0.02, label="norm outliers",
))
