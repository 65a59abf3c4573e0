"""Anisotropy: the mean cosine over all pairs of distinct rows (exact, in closed form from the sum of the unit
rows), the norm of the mean vector relative to the mean norm, and the cosines of a seeded sample."""

from __future__ import annotations

import numpy as np

from core.audit._context import Context
from core.audit._shared import na, status_above
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check

_INF = float("inf")
_CONE = frozenset({"encoder", "decoder", "unknown"})


def static_cone(family: str, source: str) -> str:
    """Why anisotropy and rogue dimensions do not apply to static word vectors."""
    return (f"static word vectors ({source}) lie in a narrow cone by construction (Mimno & Thompson 2017), so a "
            "common direction is no defect")


def run(ctx: Context) -> Check:
    scan, sample, policy = ctx.scan, ctx.sample, ctx.policy
    pol = policy.section("anisotropy")
    n = int(scan.good.sum())
    min_rows = int(policy.num("anisotropy", "min_rows"))
    if n < min_rows:
        return na("anisotropy", policy,
                   f"{n} finite non-zero rows; the mean pairwise cosine needs at least {min_rows}")
    mean_cos = (float(scan.unit_sum @ scan.unit_sum) - n) / (n * (n - 1))
    ratio = float(np.linalg.norm(scan.raw_sum / n) / np.mean(scan.norms[scan.good]))
    status = status_above(mean_cos, policy.num("anisotropy", "warn_above"), policy.num("anisotropy", "fail_above"))
    q05, _q50, q95 = sample.cos_quantiles
    reason = (f"mean cosine between rows {mean_cos:.3f} (all pairs); the mean vector is {ratio:.2f} of the mean "
              f"norm; on a seeded sample of {sample.rows.size} rows cosines run {q05:.2f} … {q95:.2f} (5–95%)")
    if status != "pass":
        reason += "; rows share a common direction that inflates every cosine"
    return Check("anisotropy", status, mean_cos, pol, reason,
                 data={"histogram": sample.cos_hist, "mean": mean_cos, "sample_mean": sample.cos_mean,
                       "mean_vector_ratio": ratio, "quantiles": sample.cos_quantiles, "sample": int(sample.rows.size)})



SPEC = register(CheckSpec(
    id="anisotropy", title="Anisotropy", unit="mean cosine",
    premise="A high mean cosine between rows means a common direction inflates every similarity, the "
            "degeneration reported for transformer token embeddings (Gao et al. 2019, Ethayarajh 2019). "
            "Static word2vec-style vectors lie in a narrow cone by construction of negative sampling "
            "(Mimno & Thompson 2017), so for them the check does not apply.",
    defaults={"warn_above": 0.5, "fail_above": 0.95, "sample": 2000, "seed": 0, "min_rows": 10},
    rules={"warn_above": number(-1, 1), "fail_above": number(-1, 1), "sample": number(10, 50_000, True),
           "seed": number(0, 2**32 - 1, True), "min_rows": number(2, _INF, True)},
    run=run, order=50, step=20, weight=0.01, label="anisotropy",
    families=_CONE, why_not=static_cone,
))
