"""Basic chart builders: norms, dimensions, vectors, a small similarity heatmap.

Tests read ``chart.to_dict()``; pages pass the chart to ``st.altair_chart``. Builders keep their data
under altair's 5,000-row limit by binning or downsampling here, never in the page.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

MAX_ROWS = 5000


def norm_histogram(norms: np.ndarray, bins: int = 60, title: str = "Row norms") -> alt.Chart:
    """Histogram of row L2 norms, binned in numpy so any matrix size stays small."""
    finite = norms[np.isfinite(norms)]
    counts, edges = np.histogram(finite, bins=bins) if finite.size else (np.zeros(1), np.array([0.0, 1.0]))
    df = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "rows": counts.astype(int)})
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("start:Q", title="L2 norm", bin="binned"),
            x2="end:Q",
            y=alt.Y("rows:Q", title="rows"),
            tooltip=[alt.Tooltip("start:Q", format=".3f"), alt.Tooltip("end:Q", format=".3f"), "rows:Q"],
        )
    )


def dimension_profile(mean: np.ndarray, std: np.ndarray) -> alt.LayerChart:
    """Per-dimension mean as a line with a ±1 std band."""
    df = pd.DataFrame({"dim": np.arange(mean.shape[0]), "mean": mean, "lo": mean - std, "hi": mean + std,
                       "std": std})
    base = alt.Chart(df, title="Per-dimension mean ± std").encode(x=alt.X("dim:Q", title="dimension"))
    band = base.mark_area(opacity=0.3).encode(y=alt.Y("lo:Q", title="value"), y2="hi:Q")
    line = base.mark_line().encode(y="mean:Q", tooltip=["dim:Q", alt.Tooltip("mean:Q", format=".4f"),
                                                         alt.Tooltip("std:Q", format=".4f")])
    return band + line


def vector_lines(vectors: dict[str, np.ndarray], first: int = 100) -> alt.Chart:
    """The first ``first`` values of one or more vectors as lines, one colour per token."""
    frames = [pd.DataFrame({"dim": np.arange(min(first, v.shape[0])), "value": v[:first], "token": name})
              for name, v in vectors.items()]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dim", "value", "token"])
    return (
        alt.Chart(df, title=f"First {first} values")
        .mark_line(point=False)
        .encode(x=alt.X("dim:Q", title="dimension"), y=alt.Y("value:Q"), color=alt.Color("token:N"),
                tooltip=["token:N", "dim:Q", alt.Tooltip("value:Q", format=".4f")])
    )


def top_dims_bar(dims: Sequence[tuple[int, float]], title: str = "Top dimensions by |value|") -> alt.Chart:
    """Bars of the largest-magnitude dimensions, signed."""
    df = pd.DataFrame({"dim": [str(d) for d, _ in dims], "value": [v for _, v in dims]})
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            x=alt.X("dim:N", sort=None, title="dimension"),
            y=alt.Y("value:Q"),
            color=alt.condition("datum.value > 0", alt.value("#4c78a8"), alt.value("#e45756")),
            tooltip=["dim:N", alt.Tooltip("value:Q", format=".4f")],
        )
    )


def similarity_heatmap(labels: Sequence[str], matrix: np.ndarray, title: str = "Cosine similarity",
                       annotate: bool = True) -> alt.LayerChart | alt.Chart:
    """An annotated heatmap of a square similarity matrix (keep it to what a person can read, ~70×70)."""
    n = len(labels)
    rows = [{"a": labels[i], "b": labels[j], "cosine": float(matrix[i, j])} for i in range(n) for j in range(n)]
    df = pd.DataFrame(rows, columns=["a", "b", "cosine"])
    order = list(labels)
    base = alt.Chart(df, title=title).encode(
        x=alt.X("b:N", sort=order, title=None), y=alt.Y("a:N", sort=order, title=None)
    )
    rect = base.mark_rect().encode(
        color=alt.Color("cosine:Q", scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)),
        tooltip=["a:N", "b:N", alt.Tooltip("cosine:Q", format=".3f")],
    )
    if not annotate or n > 30:
        return rect
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("cosine:Q", format=".2f"),
        color=alt.condition("abs(datum.cosine) > 0.6", alt.value("white"), alt.value("black")),
    )
    return rect + text
