"""Chart builders for the projection pages: the 2-D scatter, the map of every point, the binned density,
explained variance, 3-D.

The 2-D scatter carries two named selections the dashboard reads back: ``brush`` (drag a box) and
``pick`` (click points, shift-click for more); it draws one SVG mark per point, which suits up to tens of
thousands. :func:`projection_map` draws any number (a 262,144-token vocabulary) with WebGL through plotly's
``scattergl``, box and lasso selection included. Altair has no 3-D, so :func:`projection_scatter_3d` builds
a plotly figure too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import altair as alt
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "MAP_CATEGORIES",
    "explained_variance_bar",
    "projection_density",
    "projection_map",
    "selected_ids",
    "projection_scatter",
    "projection_scatter_3d",
]

_HIGHLIGHT = "datum.highlight != ''"


def _colour(frame: pd.DataFrame, title: str, order: Sequence[str] | None) -> Any:
    if "colour" not in frame.columns:
        return alt.value("#4c78a8")
    scheme: Literal["category20", "tableau10"] = "category20" if frame["colour"].nunique() > 10 else "tableau10"
    scale = alt.Scale(domain=list(order), scheme=scheme) if order else alt.Scale(scheme=scheme)
    return alt.Color("colour:N", title=title, scale=scale, legend=alt.Legend(symbolLimit=30))


def _tooltip(frame: pd.DataFrame, colour_title: str) -> list[alt.Tooltip]:
    tips = [alt.Tooltip("token:N", title="token"), alt.Tooltip("id:Q", title="id")]
    if "colour" in frame.columns:
        tips.append(alt.Tooltip("colour:N", title=colour_title))
    elif "kind" in frame.columns:
        tips.append(alt.Tooltip("kind:N", title="kind"))
    return tips


def projection_scatter(frame: pd.DataFrame, *, axis_titles: Sequence[str] = ("x", "y"),
                       colour_title: str = "colour", colour_order: Sequence[str] | None = None,
                       title: str = "") -> alt.Chart | alt.LayerChart:
    """A 2-D scatter of projected points, one mark per point.

    Args:
        frame: columns token, id, x, y, and optionally colour (a category) and highlight ("match",
            "neighbour" or "" — highlighted points get a ring and their label). Keep it to
            :data:`core.projection.BROWSER_MAX_POINTS` rows; past that, use :func:`projection_density`.
        axis_titles: titles of x and y.
        colour_title: legend title; colour_order: legend order.

    Returns:
        a chart with the selections ``brush`` (interval) and ``pick`` (points, by id).
    """
    n = len(frame)
    size = 40 if n <= 1_000 else 14 if n <= 10_000 else 6
    opacity = 0.85 if n <= 1_000 else 0.6
    brush = alt.selection_interval(name="brush", encodings=["x", "y"])
    pick = alt.selection_point(name="pick", fields=["id"], on="click", toggle="event.shiftKey")
    x = alt.X("x:Q", title=axis_titles[0], scale=alt.Scale(zero=False))
    y = alt.Y("y:Q", title=axis_titles[1] if len(axis_titles) > 1 else "y", scale=alt.Scale(zero=False))
    base = alt.Chart(frame, title=title, height=560).encode(x=x, y=y)
    points = base.mark_circle(size=size, opacity=opacity).encode(
        color=_colour(frame, colour_title, colour_order),
        tooltip=_tooltip(frame, colour_title),
    ).add_params(brush, pick)
    if "highlight" not in frame.columns or not (frame["highlight"] != "").any():
        return points
    rings = base.transform_filter(_HIGHLIGHT).mark_point(size=140, filled=False, strokeWidth=2).encode(
        color=alt.condition("datum.highlight == 'match'", alt.value("#d62728"), alt.value("#222222")),
        tooltip=_tooltip(frame, colour_title),
    )
    labels = base.transform_filter(_HIGHLIGHT).mark_text(align="left", dx=7, dy=-7, fontSize=12).encode(
        text="token:N",
        color=alt.condition("datum.highlight == 'match'", alt.value("#d62728"), alt.value("#222222")),
    )
    return alt.LayerChart(layer=[points, rings, labels])


def projection_density(cells: pd.DataFrame, *, axis_titles: Sequence[str] = ("x", "y"), points: int | None = None,
                       highlight: pd.DataFrame | None = None, title: str = "") -> alt.Chart | alt.LayerChart:
    """An honest aggregated view of many points: counts in grid cells, on a log colour scale.

    Args:
        cells: from :func:`core.projection.density` (x, x2, y, y2, count); at most bins² rows.
        axis_titles: titles of x and y.
        points: the number of points binned, for the title.
        highlight: optional rows (token, x, y, highlight) drawn on top as labelled points.
    """
    if not title and points is not None:
        title = f"{points:,} points, binned: colour = points per cell"
    rect = alt.Chart(cells, title=title, height=560).mark_rect().encode(
        x=alt.X("x:Q", bin="binned", title=axis_titles[0]),
        x2="x2:Q",
        y=alt.Y("y:Q", bin="binned", title=axis_titles[1] if len(axis_titles) > 1 else "y"),
        y2="y2:Q",
        color=alt.Color("count:Q", title="points", scale=alt.Scale(type="log", scheme="viridis")),
        tooltip=[alt.Tooltip("count:Q", title="points", format=","),
                 alt.Tooltip("x:Q", format=".3g", title="x from"), alt.Tooltip("x2:Q", format=".3g", title="x to"),
                 alt.Tooltip("y:Q", format=".3g", title="y from"), alt.Tooltip("y2:Q", format=".3g", title="y to")],
    )
    if highlight is None or highlight.empty:
        return rect
    marks = alt.Chart(highlight).encode(x="x:Q", y="y:Q")
    ring = marks.mark_point(size=140, filled=False, strokeWidth=2, color="#d62728").encode(
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("id:Q")])
    text = marks.mark_text(align="left", dx=7, dy=-7, fontSize=12, color="#d62728").encode(text="token:N")
    return alt.LayerChart(layer=[rect, ring, text])


def explained_variance_bar(ratios: Sequence[float] | np.ndarray, shown: int = 2,
                           title: str = "Explained variance per principal component") -> alt.LayerChart:
    """Bars of each component's share of the variance, with the running total; the shown ones stand out."""
    r = np.asarray(ratios, dtype=np.float64)
    df = pd.DataFrame({"component": [f"PC{i + 1}" for i in range(r.shape[0])], "ratio": r,
                       "cumulative": np.cumsum(r), "shown": ["shown" if i < shown else "not shown"
                                                             for i in range(r.shape[0])]})
    order = df["component"].tolist()
    base = alt.Chart(df, title=title, height=220).encode(x=alt.X("component:N", sort=order, title=None))
    bars = base.mark_bar().encode(
        y=alt.Y("ratio:Q", title="share of variance", axis=alt.Axis(format="%")),
        color=alt.Color("shown:N", title=None, scale=alt.Scale(domain=["shown", "not shown"],
                                                                range=["#4c78a8", "#c7d4e4"])),
        tooltip=["component:N", alt.Tooltip("ratio:Q", format=".2%", title="share"),
                 alt.Tooltip("cumulative:Q", format=".2%", title="cumulative")],
    )
    labels = base.mark_text(dy=-6, fontSize=11).encode(y="ratio:Q", text=alt.Text("ratio:Q", format=".1%"))
    return alt.LayerChart(layer=[bars, labels])


def projection_scatter_3d(frame: pd.DataFrame, *, axis_titles: Sequence[str] = ("x", "y", "z"),
                          colour_title: str = "colour", colour_order: Sequence[str] | None = None,
                          title: str = "") -> go.Figure:
    """A rotatable 3-D scatter (plotly, WebGL): one trace per colour category, hover shows token and id.

    Args:
        frame: columns token, id, x, y, z, and optionally colour and highlight (as in
            :func:`projection_scatter`).
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    n = len(frame)
    size = 4 if n <= 1_000 else 2.5 if n <= 10_000 else 1.5
    groups: list[tuple[str, pd.DataFrame]]
    if "colour" in frame.columns:
        order = list(colour_order) if colour_order else list(dict.fromkeys(frame["colour"]))
        groups = [(str(c), frame[frame["colour"] == c]) for c in order]
    else:
        groups = [("points", frame)]
    for name, part in groups:
        if part.empty:
            continue
        fig.add_trace(go.Scatter3d(
            x=part["x"], y=part["y"], z=part["z"], mode="markers", name=name,
            marker={"size": size, "opacity": 0.75},
            customdata=np.stack([part["id"].to_numpy()], axis=1),
            text=part["token"],
            hovertemplate="%{text}<br>id %{customdata[0]}<extra>" + name + "</extra>",
        ))
    if "highlight" in frame.columns:
        marked = frame[frame["highlight"] != ""]
        if not marked.empty:
            fig.add_trace(go.Scatter3d(
                x=marked["x"], y=marked["y"], z=marked["z"], mode="markers+text", name="search",
                text=marked["token"], textposition="top center",
                marker={"size": 7, "color": ["#d62728" if h == "match" else "#222222" for h in marked["highlight"]],
                        "symbol": "circle-open"},
                hovertemplate="%{text}<extra>search</extra>",
            ))
    fig.update_layout(
        title=title or None, height=640, legend_title_text=colour_title, margin={"l": 0, "r": 0, "t": 40, "b": 0},
        scene={"xaxis_title": axis_titles[0], "yaxis_title": axis_titles[1], "zaxis_title": axis_titles[2]},
    )
    return fig


#: Colour categories the map draws apart (one WebGL trace and legend entry each); the rest share one.
MAP_CATEGORIES = 20
_OTHER_LUMPED = "(the rest)"


def projection_map(frame: pd.DataFrame, *, axis_titles: Sequence[str] = ("x", "y"), colour_title: str = "colour",
                   colour_order: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Every point of a 2-D projection as a WebGL marker (plotly ``scattergl``): hover shows the token and
    its id, box and lasso select, the legend hides or shows a colour.

    The message to the browser stays small for a whole vocabulary: coordinates go as float32 and ids as
    int32 typed arrays (plotly writes numpy arrays as base64 binary), and the labels once, as hover text. For
    262,144 points that is about 6 MB.

    Args:
        frame: columns token, id, x, y, and optionally colour (a category) and highlight ("match",
            "neighbour" or ""; highlighted points get a ring and their label).
        axis_titles: titles of x and y.
        colour_title: legend title; colour_order: legend order. Past :data:`MAP_CATEGORIES` categories
            (in this order, else by size), the rest are drawn together as "(the rest)".

    Returns:
        a figure with one ``scattergl`` trace per colour (``customdata`` = the matrix row ids, so a selection
        maps back to tokens) and, when something is highlighted, a last trace named "search".
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    n = len(frame)
    size = 6 if n <= 1_000 else 4 if n <= 20_000 else 2.5
    ids = frame["id"].to_numpy(dtype=np.int32)
    xs = frame["x"].to_numpy(dtype=np.float32)
    ys = frame["y"].to_numpy(dtype=np.float32)
    tokens = frame["token"].astype(str).to_numpy(dtype=object)
    if "colour" in frame.columns:
        colours = frame["colour"].astype(str).to_numpy(dtype=object)
        sizes = pd.Series(colours).value_counts()
        order = [c for c in (colour_order or sizes.index) if c in sizes.index]
        order += [c for c in sizes.index if c not in order]
        shown = order[:MAP_CATEGORIES] if len(order) > MAP_CATEGORIES + 1 else order
        groups = [(str(c), colours == c) for c in shown]
        if len(shown) < len(order):
            groups.append((_OTHER_LUMPED, ~np.isin(colours, shown)))
    else:
        groups = [("points", np.ones(n, dtype=bool))]
    palette = qualitative.Plotly if len(groups) <= 10 else qualitative.Dark24
    fig = go.Figure()
    for j, (name, where) in enumerate(groups):
        if not where.any():
            continue
        fig.add_trace(go.Scattergl(
            x=xs[where], y=ys[where], mode="markers", name=name, customdata=ids[where], text=tokens[where],
            marker={"size": size, "opacity": 0.7,
                    "color": "#9a9a9a" if name == _OTHER_LUMPED else palette[j % len(palette)]},
            hovertemplate="%{text}<br>id %{customdata}<extra>" + name.replace("<", "&lt;") + "</extra>",
        ))
    if "highlight" in frame.columns:
        marked = (frame["highlight"] != "").to_numpy()
        if marked.any():
            kinds = frame["highlight"].to_numpy()[marked]
            fig.add_trace(go.Scattergl(
                x=xs[marked], y=ys[marked], mode="markers+text", name="search", customdata=ids[marked],
                text=tokens[marked].tolist(), textposition="top right",
                marker={"size": 12, "symbol": "circle-open", "line": {"width": 2},
                        "color": ["#d62728" if k == "match" else "#222222" for k in kinds]},
                hovertemplate="%{text}<br>id %{customdata}<extra>search</extra>",
            ))
    fig.update_layout(
        title=title or None, height=640, legend_title_text=colour_title, dragmode="select", hovermode="closest",
        margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10}, uirevision="projection-map",
        xaxis={"title": axis_titles[0], "zeroline": False},
        yaxis={"title": axis_titles[1] if len(axis_titles) > 1 else "y", "zeroline": False},
        legend={"itemsizing": "constant"},
    )
    return fig


def selected_ids(fig: go.Figure, points: Sequence[Any]) -> list[int]:
    """The matrix row ids of the points a box or lasso selected on a :func:`projection_map` figure.

    Args:
        fig: the figure as built (its traces' ``customdata`` are the ids).
        points: the selection's points as Streamlit returns them (``curve_number`` and ``point_index`` each);
            anything else in the list is ignored.

    Returns:
        the ids, each once, in the order first selected.
    """
    traces = [np.asarray(t.customdata) if t.customdata is not None else np.zeros(0, dtype=np.int32)
              for t in fig.data]
    out: dict[int, None] = {}
    for pt in points:
        if not isinstance(pt, dict):
            continue
        curve, index = pt.get("curve_number"), pt.get("point_index")
        if isinstance(curve, int) and isinstance(index, int) and 0 <= curve < len(traces) \
                and 0 <= index < traces[curve].shape[0]:
            out.setdefault(int(traces[curve][index]), None)
    return list(out)
