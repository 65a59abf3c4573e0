"""Chart builders for the health audit: norm histogram with outliers marked, under-trained scores, the
distribution of pairwise cosines, per-dimension shares, and norm against frequency.

Every builder takes the small tables :mod:`core.audit` leaves in ``Check.data`` (already binned or sampled
under 5,000 rows); :func:`audit_chart` picks the right one for a check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import pandas as pd

if TYPE_CHECKING:
    from core.audit import Check

_RED, _BLUE, _ORANGE = "#e45756", "#4c78a8", "#f58518"


def audit_norm_histogram(hist: pd.DataFrame, lo: float, hi: float,
                         title: str = "Row norms (outliers in red)") -> alt.LayerChart:
    """Histogram of row norms (bins start/end/rows/outlier) with the two outlier cut-offs as rules."""
    df = hist.assign(where=hist["outlier"].map({True: "outlier", False: "inside"}))
    bars = alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("start:Q", bin="binned", title="L2 norm"),
        x2="end:Q",
        y=alt.Y("rows:Q", title="rows", scale=alt.Scale(type="symlog")),
        color=alt.Color("where:N", scale=alt.Scale(domain=["inside", "outlier"], range=[_BLUE, _RED]),
                        title=None),
        tooltip=[alt.Tooltip("start:Q", format=".3f"), alt.Tooltip("end:Q", format=".3f"), "rows:Q", "where:N"],
    )
    cuts = pd.DataFrame({"norm": [lo, hi], "cut": ["low cut-off", "high cut-off"]})
    lo_hi = (float(hist["start"].min()), float(hist["end"].max())) if len(hist) else (lo, hi)
    cuts = cuts[(cuts["norm"] >= lo_hi[0]) & (cuts["norm"] <= lo_hi[1])]
    rules = alt.Chart(cuts).mark_rule(color=_RED, strokeDash=[4, 3]).encode(
        x="norm:Q", tooltip=["cut:N", alt.Tooltip("norm:Q", format=".4f")])
    return bars + rules


def undertrained_histogram(hist: pd.DataFrame, cutoff: float, xlabel: str = "L2 norm",
                           title: str = "Under-trained score (candidates in red)") -> alt.LayerChart:
    """Histogram of the under-trained score (bins start/end/rows/candidate) with the candidate cut-off."""
    df = hist.assign(where=hist["candidate"].map({True: "candidate", False: "rest"}))
    bars = alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("start:Q", bin="binned", title=xlabel),
        x2="end:Q",
        y=alt.Y("rows:Q", title="rows", scale=alt.Scale(type="symlog")),
        color=alt.Color("where:N", scale=alt.Scale(domain=["rest", "candidate"], range=[_BLUE, _RED]), title=None),
        tooltip=[alt.Tooltip("start:Q", format=".3f"), alt.Tooltip("end:Q", format=".3f"), "rows:Q"],
    )
    rule = alt.Chart(pd.DataFrame({"score": [cutoff]})).mark_rule(color=_RED, strokeDash=[4, 3]).encode(
        x="score:Q", tooltip=[alt.Tooltip("score:Q", format=".4f", title="candidate cut-off")])
    return bars + rule


def candidate_scores(candidates: pd.DataFrame, top: int = 60,
                     title: str = "Most under-trained candidates") -> alt.Chart:
    """Dots of the ``top`` candidates' scores, coloured by what the tokenizer says about them."""
    df = candidates.head(top).assign(label=lambda d: d["token"].astype(str) + " (" + d["id"].astype(str) + ")")
    return alt.Chart(df, title=title).mark_circle(size=60).encode(
        x=alt.X("score:Q", title="score", scale=alt.Scale(zero=False)),
        y=alt.Y("label:N", sort=None, title=None),
        color=alt.Color("category:N", title="tokenizer says"),
        tooltip=["token:N", "id:Q", alt.Tooltip("score:Q", format=".4f"), alt.Tooltip("z:Q", format=".1f"),
                 "category:N", "kind:N"],
    )


def pairwise_cosine_histogram(hist: pd.DataFrame, mean: float,
                              title: str = "Cosine between sampled rows") -> alt.LayerChart:
    """Histogram of pairwise cosines on the seeded sample (bins start/end/pairs) with the mean as a rule."""
    bars = alt.Chart(hist, title=title).mark_bar(color=_BLUE).encode(
        x=alt.X("start:Q", bin="binned", title="cosine", scale=alt.Scale(domain=[-1, 1])),
        x2="end:Q",
        y=alt.Y("pairs:Q", title="pairs"),
        tooltip=[alt.Tooltip("start:Q", format=".3f"), alt.Tooltip("end:Q", format=".3f"), "pairs:Q"],
    )
    rule = alt.Chart(pd.DataFrame({"cosine": [mean]})).mark_rule(color=_ORANGE).encode(
        x="cosine:Q", tooltip=[alt.Tooltip("cosine:Q", format=".4f", title="mean cosine (all pairs)")])
    return bars + rule


def rogue_dimensions_bar(dims: pd.DataFrame, warn: float, fail: float,
                         title: str = "Share of the cosine carried by each dimension") -> alt.LayerChart:
    """Per-dimension bars of the share (dims: dim/share/cos_share/cos2_share/flagged), thresholds as rules."""
    df = dims.assign(where=dims["flagged"].map({True: "rogue", False: "ordinary"}))
    bars = alt.Chart(df, title=title).mark_bar().encode(
        x=alt.X("dim:O", title="dimension", axis=alt.Axis(labelOverlap=True, values=_ticks(len(df)))),
        y=alt.Y("share:Q", title="share", scale=alt.Scale(domainMin=0)),
        color=alt.Color("where:N", scale=alt.Scale(domain=["ordinary", "rogue"], range=[_BLUE, _RED]), title=None),
        tooltip=["dim:O", alt.Tooltip("share:Q", format=".2%"), alt.Tooltip("cos_share:Q", format=".2%"),
                 alt.Tooltip("cos2_share:Q", format=".2%"), alt.Tooltip("contribution:Q", format=".2e")],
    )
    lines = pd.DataFrame({"share": [warn, fail], "threshold": ["warn", "fail"]})
    rules = alt.Chart(lines).mark_rule(strokeDash=[4, 3]).encode(
        y="share:Q", color=alt.Color("threshold:N", scale=alt.Scale(domain=["warn", "fail"], range=[_ORANGE, _RED]),
                                     legend=None), tooltip=["threshold:N", "share:Q"])
    return bars + rules


def _ticks(n: int) -> list[int]:
    step = max(1, n // 16)
    return list(range(0, n, step))


def norm_frequency_scatter(points: pd.DataFrame, xlabel: str = "Zipf frequency",
                           title: str = "Row norm against word frequency") -> alt.Chart:
    """Scatter of norm (y) against frequency (x) for sampled words (points: token/frequency/norm)."""
    return alt.Chart(points, title=title).mark_circle(size=12, opacity=0.45).encode(
        x=alt.X("frequency:Q", title=xlabel, scale=alt.Scale(zero=False)),
        y=alt.Y("norm:Q", title="L2 norm", scale=alt.Scale(zero=False)),
        tooltip=["token:N", alt.Tooltip("frequency:Q", format=".2f"), alt.Tooltip("norm:Q", format=".3f")],
    )


def audit_chart(check: Check) -> alt.Chart | alt.LayerChart | None:
    """The chart for one audit check, or None when the check has nothing to draw (or did not apply)."""
    d = check.data
    if check.id == "norm_outliers" and "histogram" in d and len(d["histogram"]):
        lo, hi = d["cutoffs"]
        return audit_norm_histogram(d["histogram"], lo, hi)
    if check.id == "undertrained" and "histogram" in d and len(d["histogram"]):
        return undertrained_histogram(d["histogram"], d["cutoff"], d.get("xlabel", "score"))
    if check.id == "anisotropy" and "histogram" in d and len(d["histogram"]):
        return pairwise_cosine_histogram(d["histogram"], d["mean"])
    if check.id == "rogue_dimensions" and "dims" in d:
        return rogue_dimensions_bar(d["dims"], d["warn"], d["fail"])
    if check.id == "norm_frequency" and "points" in d and len(d["points"]):
        return norm_frequency_scatter(d["points"], d.get("xlabel", "frequency"))
    return None


__all__ = ["audit_chart", "audit_norm_histogram", "candidate_scores", "norm_frequency_scatter",
           "pairwise_cosine_histogram", "rogue_dimensions_bar", "undertrained_histogram"]
