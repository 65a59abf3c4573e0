"""Chart builders for the Compare page: the drift histogram, Jaccard@k counts, drift against Jaccard, the
joint projection of A and B with arrows from each followed token's old to new position, and a token's
vector difference.

Every builder takes arrays or the frames :mod:`core.compare` returns and keeps its data under altair's
5,000-row limit (binned or downsampled here).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._basic import MAX_ROWS

__all__ = [
    "drift_histogram",
    "drift_jaccard_scatter",
    "jaccard_bars",
    "joint_projection_chart",
    "vector_difference_chart",
]

_COLOUR_A, _COLOUR_B = "#4c78a8", "#e45756"
_SIDE_COLOURS = alt.Scale(domain=["A", "B"], range=[_COLOUR_A, _COLOUR_B])


def drift_histogram(drift: np.ndarray | Sequence[float], bins: int = 50, *, log: bool = True,
                    title: str = "Drift per token (1 − cosine after alignment)") -> alt.Chart:
    """Counts of tokens per drift bin (binned in numpy, so any vocabulary stays ≤ ``bins`` rows).

    Args:
        log: a symlog count axis, so a few moved tokens stay visible next to thousands that did not move.
    """
    d = np.asarray(drift, dtype=np.float64)
    d = d[np.isfinite(d)]
    hi = float(d.max()) if d.size else 1.0
    counts, edges = np.histogram(d, bins=bins, range=(0.0, hi if hi > 0 else 1.0))
    df = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "tokens": counts.astype(np.int64)})
    y_scale = alt.Scale(type="symlog") if log else alt.Scale()
    return alt.Chart(df, title=title, height=260).mark_bar().encode(
        x=alt.X("start:Q", bin="binned", title="drift"),
        x2="end:Q",
        y=alt.Y("tokens:Q", title="tokens" + (" (symlog scale)" if log else ""), scale=y_scale),
        tooltip=[alt.Tooltip("start:Q", format=".4g", title="from"), alt.Tooltip("end:Q", format=".4g", title="to"),
                 alt.Tooltip("tokens:Q", format=",")],
    )


def jaccard_bars(jaccard: np.ndarray | Sequence[float], k: int,
                 title: str = "Neighbourhood overlap per token") -> alt.Chart:
    """Tokens per shared-neighbour count: how many of its k neighbours each token kept (Jaccard@k)."""
    j = np.asarray(jaccard, dtype=np.float64)
    kept = np.rint(2 * k * j / (1 + j)).astype(np.int64)  # Jaccard = s / (2k − s) for s shared neighbours
    counts = np.bincount(np.clip(kept, 0, k), minlength=k + 1)
    df = pd.DataFrame({"kept": np.arange(k + 1), "jaccard": np.arange(k + 1) / (2 * k - np.arange(k + 1)),
                       "tokens": counts})
    return alt.Chart(df, title=title, height=260).mark_bar().encode(
        x=alt.X("kept:O", title=f"neighbours kept (of {k})"),
        y=alt.Y("tokens:Q", title="tokens", scale=alt.Scale(type="symlog")),
        tooltip=["kept:O", alt.Tooltip("jaccard:Q", format=".3f", title=f"Jaccard@{k}"),
                 alt.Tooltip("tokens:Q", format=",")],
    )


def drift_jaccard_scatter(frame: pd.DataFrame, *, limit: int = 3000, seed: int = 0,
                          title: str = "Drift against neighbourhood overlap") -> alt.Chart:
    """One point per token: drift (x) against Jaccard@k (y); the most moved are always kept.

    Args:
        frame: columns token, drift, jaccard (e.g. :meth:`core.compare.Comparison.table` with ``top=None``).
        limit: at most this many points: the ``limit // 4`` most moved plus a seeded random sample.
    """
    limit = min(limit, MAX_ROWS)
    df = frame[["token", "drift", "jaccard"]]
    if len(df) > limit:
        top = df.nlargest(limit // 4, "drift")
        rest = df.drop(index=top.index).sample(n=limit - len(top), random_state=seed)
        df = pd.concat([top, rest])
        title = f"{title} ({limit:,} of {len(frame):,} tokens: the most moved and a sample)"
    return alt.Chart(df, title=title, height=320).mark_circle(size=22, opacity=0.6).encode(
        x=alt.X("drift:Q", title="drift"),
        y=alt.Y("jaccard:Q", title="Jaccard@k", scale=alt.Scale(domain=[0, 1])),
        tooltip=["token:N", alt.Tooltip("drift:Q", format=".4f"), alt.Tooltip("jaccard:Q", format=".3f")],
    )


def joint_projection_chart(frame: pd.DataFrame, *, axis_titles: Sequence[str] = ("x", "y"), mode: str = "overlay",
                           title: str = "") -> alt.LayerChart | alt.HConcatChart:
    """A and B in one projection: overlaid with arrows from each followed token's A position to its B one,
    or side by side with the same axes.

    Args:
        frame: :attr:`core.compare.JointProjection.frame` (token, side, x, y, drift, jaccard, selected).
        mode: "overlay" (points of both, a rule and a head per followed token) or "side" (two panels).
    """
    if mode not in ("overlay", "side"):
        raise ValueError(f"mode={mode!r}: must be 'overlay' or 'side'")
    df = frame.iloc[:MAX_ROWS]
    x = alt.X("x:Q", title=axis_titles[0], scale=alt.Scale(zero=False))
    y = alt.Y("y:Q", title=axis_titles[1] if len(axis_titles) > 1 else "y", scale=alt.Scale(zero=False))
    tips = ["token:N", "side:N", alt.Tooltip("drift:Q", format=".4f"), alt.Tooltip("jaccard:Q", format=".3f")]
    if mode == "side":
        panels = []
        for side in ("A", "B"):
            part = df[df["side"] == side]
            base = alt.Chart(part, title=f"{side}", height=440).encode(x=x, y=y)
            dots = base.mark_circle(size=16, opacity=0.35, color=_COLOUR_A if side == "A" else _COLOUR_B).encode(
                tooltip=tips)
            marked = base.transform_filter("datum.selected").mark_point(size=90, filled=True, color="#222222")
            labels = base.transform_filter("datum.selected").mark_text(align="left", dx=6, dy=-6, fontSize=11).encode(
                text="token:N")
            panels.append(alt.LayerChart(layer=[dots, marked, labels]))
        return alt.HConcatChart(hconcat=panels, title=title).resolve_scale(x="shared", y="shared")
    arrows = df[df["side"] == "A"][["token", "x", "y", "selected", "drift"]].merge(
        df[df["side"] == "B"][["token", "x", "y"]].rename(columns={"x": "x2", "y": "y2"}), on="token")
    arrows = arrows[arrows["selected"]]
    points = alt.Chart(df, title=title, height=520).mark_circle(size=16, opacity=0.3).encode(
        x=x, y=y, color=alt.Color("side:N", scale=_SIDE_COLOURS, title="matrix"), tooltip=tips)
    rules = alt.Chart(arrows).mark_rule(strokeWidth=1.6, color="#555555").encode(
        x="x:Q", y="y:Q", x2="x2:Q", y2="y2:Q",
        tooltip=["token:N", alt.Tooltip("drift:Q", format=".4f")])
    tails = alt.Chart(arrows).mark_point(size=50, filled=True, color=_COLOUR_A).encode(
        x="x:Q", y="y:Q", tooltip=["token:N"])
    heads = alt.Chart(arrows).mark_point(shape="triangle", size=90, filled=True, color=_COLOUR_B).encode(
        x="x2:Q", y="y2:Q", tooltip=["token:N", alt.Tooltip("drift:Q", format=".4f")])
    labels = alt.Chart(arrows).mark_text(align="left", dx=7, dy=-7, fontSize=11).encode(
        x="x2:Q", y="y2:Q", text="token:N")
    return alt.LayerChart(layer=[points, rules, tails, heads, labels])


def vector_difference_chart(vector_a: np.ndarray, vector_b: np.ndarray, top: int = 30,
                            title: str = "") -> alt.Chart:
    """Bars of b − a for the ``top`` dimensions that changed most (signed), A's and B's values in the tooltip."""
    a = np.asarray(vector_a, dtype=np.float64)
    b = np.asarray(vector_b, dtype=np.float64)
    diff = b - a
    n = min(top, diff.size)
    dims = np.argsort(-np.abs(diff), kind="stable")[:n]
    df = pd.DataFrame({"dim": [str(d) for d in dims], "difference": diff[dims], "a": a[dims], "b": b[dims]})
    title = title or f"The {n} dimensions that changed most (B − A)"
    return alt.Chart(df, title=title, height=240).mark_bar().encode(
        x=alt.X("dim:N", sort=None, title="dimension"),
        y=alt.Y("difference:Q", title="B − A"),
        color=alt.condition("datum.difference > 0", alt.value("#4c78a8"), alt.value("#e45756")),
        tooltip=["dim:N", alt.Tooltip("difference:Q", format=".4f"), alt.Tooltip("a:Q", format=".4f", title="A"),
                 alt.Tooltip("b:Q", format=".4f", title="B")],
    )
