"""Projection: PCA, t-SNE, UMAP or custom semantic axes, in 2-D or 3-D, on points chosen in the open."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from core import charts
from core import export as ex
from core import projection as pj
from core.tokens import KINDS
from dashboard import cached, longrun, state
from dashboard.ui import current_matrix, shown_errors

METHOD_LABELS: dict[str, pj.Method] = {"PCA": "pca", "t-SNE": "tsne", "UMAP": "umap", "Custom axes": "axes"}
POINT_LABELS = {"All rows": "all", "First N rows": "first", "Random sample": "random",
                "Stratified by kind": "stratified", "Neighbourhood of words": "neighbours",
                "Pasted list": "list"}
DRAW_OPTIONS = ["every point", "binned density"]
#: Rows of the selected-points table sent to the browser; a lasso over a whole vocabulary lists the first ones.
TABLE_ROWS = 20_000
COLOUR_LABELS = {"kind": "Token kind", "frequency": "Word frequency (wordfreq)", "query": "Query word"}


def _split(text: str) -> tuple[str, ...]:
    parts = [p.strip() for chunk in text.splitlines() for p in chunk.split(",")]
    return tuple(p for p in parts if p)


m = current_matrix()
mkey = cached.key_of(m)
st.title("Projection")
if len(m) < 3:
    st.info(f"This matrix has {len(m)} row(s); a projection needs at least 3.")
    st.stop()
st.caption(f"{len(m):,} tokens × {m.dim} dimensions. The caption under the controls always says how many points "
           "are shown and how they were chosen; nothing is sampled silently.")

# -- what to compute (settings survive a visit to another page) -----------------------------------------
kinds_present = [kd for kd in KINDS if kd in set(m.kinds)]
DEFAULTS: dict[str, Any] = {
    "projection.method": "PCA", "projection.dims": 2, "projection.points": "All rows",
    "projection.sample": min(5_000, len(m)), "projection.sample_seed": 0, "projection.queries": "king, paris",
    "projection.k": 50, "projection.kinds": [], "projection.list": "king\nqueen\nman\nwoman",
    "projection.perplexity": 30.0, "projection.n_neighbors": 15, "projection.min_dist": 0.1,
    "projection.metric": "cosine", "projection.seed": 0, "projection.ax_a": "man", "projection.ax_b": "woman",
    "projection.y_mode": "a direction", "projection.ax_c": "king", "projection.ax_d": "queen",
    "projection.colour": "kind", "projection.search": "", "projection.search_k": 10,
    "projection.draw": "every point",
}
kept = state.kept_settings(DEFAULTS)
# What was kept for another matrix may not fit this one.
if not 3 <= int(kept["projection.sample"]) <= len(m):
    kept["projection.sample"] = min(5_000, len(m))
kept["projection.kinds"] = [kd for kd in kept["projection.kinds"] if kd in kinds_present]

c1, c2, c3 = st.columns([3, 2, 3])
method = METHOD_LABELS[c1.radio("Method", list(METHOD_LABELS), horizontal=True, **state.bind("projection.method"))]
dims = c2.radio("View", [2, 3], format_func=lambda d: f"{d}-D", horizontal=True, **state.bind("projection.dims"))

p1, p2, p3, p4 = st.columns([3, 2, 2, 3])
points = POINT_LABELS[p1.selectbox("Points", list(POINT_LABELS), **state.bind("projection.points"))]
sample: int | None = None
seed = 0
queries: tuple[str, ...] = ()
tokens: tuple[str, ...] = ()
k = 50
if points in ("first", "random", "stratified"):
    sample = int(p2.number_input("How many", min_value=3, max_value=len(m), step=500,
                                 **state.bind("projection.sample")))
if points in ("random", "stratified"):
    seed = int(p3.number_input("Sampling seed", min_value=0, step=1, **state.bind("projection.sample_seed")))
if points == "neighbours":
    queries = _split(p2.text_input("Query words", **state.bind("projection.queries"),
                                   help="comma-separated; each brings its nearest neighbours (cosine)"))
    k = int(p3.number_input("Neighbours each", min_value=1, max_value=1000, **state.bind("projection.k")))
kinds = tuple(p4.multiselect("Only these kinds", kinds_present, **state.bind("projection.kinds"),
                             help="leave empty for every kind"))
if points == "list":
    tokens = _split(st.text_area("Tokens, one per line or comma-separated", **state.bind("projection.list")))

perplexity, n_neighbors, min_dist, pseed = 30.0, 15, 0.1, 0
metric: pj.Metric = "cosine"
axis_x: tuple[str, str] | None = None
axis_y: tuple[str, str] | None = None
if method in ("tsne", "umap"):
    q1, q2, q3, q4 = st.columns(4)
    if method == "tsne":
        perplexity = float(q1.number_input("Perplexity", min_value=1.0, max_value=500.0, step=5.0,
                                           **state.bind("projection.perplexity"),
                                           help="about the number of close neighbours each point keeps"))
    else:
        n_neighbors = int(q1.number_input("n_neighbors", min_value=2, max_value=500,
                                          **state.bind("projection.n_neighbors")))
        min_dist = float(q2.number_input("min_dist", min_value=0.0, max_value=1.0, step=0.05,
                                         **state.bind("projection.min_dist")))
    metric = q3.selectbox("Distance", pj.METRICS, **state.bind("projection.metric"))
    pseed = int(q4.number_input("Seed", min_value=0, step=1, **state.bind("projection.seed")))
if method == "axes":
    a1, a2, a3, a4, a5 = st.columns([2, 2, 2, 2, 2])
    axis_x = (a1.text_input("x from", **state.bind("projection.ax_a")),
              a2.text_input("x to", **state.bind("projection.ax_b")))
    y_mode = a3.radio("y is", ["a direction", "PCA"], **state.bind("projection.y_mode"),
                      help="PCA: the first principal component of what the x direction leaves")
    if y_mode == "a direction":
        axis_y = (a4.text_input("y from", **state.bind("projection.ax_c")),
                  a5.text_input("y to", **state.bind("projection.ax_d")))

sel_cfg = pj.SelectionConfig(sampling="first" if points == "all" else points, sample=sample, seed=seed,
                             kinds=kinds, queries=queries, k=k, tokens=tokens, strict=False)
cfg = pj.ProjectionConfig(method=method, dims=dims, seed=pseed, perplexity=perplexity, n_neighbors=n_neighbors,
                          min_dist=min_dist, metric=metric, axis_x=axis_x, axis_y=axis_y)
with shown_errors():
    sel = cached.selection(m, sel_cfg)
    cfg.validate(len(sel), m.dim)

# -- compute, or take it from the cache ----------------------------------------------------------------
pkey = (mkey, repr(sel_cfg), repr(cfg))
proj: pj.Projection | None = longrun.cached("projection", pkey)
name = pj.METHOD_NAMES[method]
if proj is None and method in ("tsne", "umap"):
    # t-SNE and UMAP run as background jobs whose results are kept on disk: once per server, shared by every
    # session that asks while they run, and they keep running (with their progress) while the user looks elsewhere.
    jobs = cached.projection_jobs()
    waiter = state.session_name()
    with shown_errors():
        proj = jobs.cached(m, sel, cfg)
        job = None if proj is not None else jobs.running(m, sel, cfg)
    if proj is None:
        if job is None:
            st.info(f"{name} of {sel.description}. It runs once on this server and the result is kept, so coming "
                    "back (or another session asking for the same) is instant.")
            if len(sel) > 20_000:
                st.warning(f"{len(sel):,} points: {name} may take minutes on a small machine; it runs in the "
                           "background, and a sample of 5,000–10,000 usually shows the same structure.")
            if not st.button(f"Run {name} on {len(sel):,} points", key="projection.run", type="primary"):
                st.stop()
            with shown_errors():
                job = jobs.start(m, sel, cfg, waiter=waiter)
        else:
            job.join(waiter)
        running = job

        def _cancel() -> str:
            stopped = running.cancel(waiter)
            return (f"{name} stopped; nothing was kept." if stopped else
                    f"You no longer wait for this {name}; another session still does, so it goes on for them.")

        longrun.follow(job, name, _cancel)
        with shown_errors():
            proj = job.result()
    found = proj
    proj = longrun.kept("projection", pkey, lambda: found)
elif proj is None:
    with shown_errors():
        proj = longrun.once("projection", pkey, lambda progress: pj.project(m, sel, cfg, progress=progress), name)
assert proj is not None

st.caption(proj.caption + f" Took {proj.seconds:.1f} s.")
for note in proj.notes:
    st.caption(f"Note: {note}")

# -- colour, search, draw -------------------------------------------------------------------------------
options = pj.colour_options(m, sel)
o1, o2, o3, o4 = st.columns([3, 3, 1, 2])
if kept["projection.colour"] not in options:
    kept["projection.colour"] = "kind"
by = o1.selectbox("Colour by", options, format_func=lambda o: COLOUR_LABELS.get(o, f"metadata: {o}"),
                  **state.bind("projection.colour"))
lang = "en"
with shown_errors():
    colours = cached.colouring(m, sel, by, lang)
label = o2.text_input("Search a label", **state.bind("projection.search"), placeholder="e.g. queen",
                      help="highlights the token and its nearest neighbours (cosine, in the original space) "
                           "among the points shown")
n_near = int(o3.number_input("Neighbours", min_value=1, max_value=100, **state.bind("projection.search_k")))
draw = o4.radio("Draw", DRAW_OPTIONS, **state.bind("projection.draw"),
                help="every point (WebGL past "
                     f"{pj.BROWSER_MAX_POINTS:,} points), or counts of points in grid cells")

frame = proj.frame(m, colours)
hood: pj.Neighborhood | None = None
if label.strip():
    with shown_errors(stop=False):
        hood = pj.search(m, proj, label, n_near)
frame["highlight"] = pj.highlight_column(len(frame), hood, proj)
if hood is not None and not hood.in_selection:
    st.warning(f"{hood.query!r} is not among the points shown; its nearest neighbours among them are marked.")

chart: Any = None
many = len(proj) > pj.BROWSER_MAX_POINTS
if draw == "binned density" or (many and proj.dims == 3):
    if draw != "binned density":
        st.info(f"A 3-D view of {len(proj):,} points is binned on x and y; the 2-D view draws every point.")
    else:
        st.caption(f"Colour is the number of points per cell; the projection used all {len(proj):,} points.")
    marked = frame.loc[frame["highlight"] != "", ["token", "id", "x", "y", "highlight"]]
    chart = charts.projection_density(pj.density(proj.coords), axis_titles=proj.axis_titles[:2], points=len(proj),
                                      highlight=marked)
    st.altair_chart(chart, width="stretch")
    picked = marked
elif proj.dims == 3:
    fig = charts.projection_scatter_3d(frame, axis_titles=proj.axis_titles, colour_title=colours.title,
                                       colour_order=colours.order)
    st.plotly_chart(fig, width="stretch", key="projection.plot3d")
    picked = frame.loc[frame["highlight"] != ""]
    st.download_button("Interactive 3-D view (HTML)", data=lambda: fig.to_html(include_plotlyjs=True),
                       file_name="projection-3d.html", mime="text/html", key="projection.html")
elif many:
    # Every point through WebGL: coordinates travel as float32 typed arrays, labels once as hover text.
    fig = charts.projection_map(frame, axis_titles=proj.axis_titles, colour_title=colours.title,
                                colour_order=colours.order)
    map_event = st.plotly_chart(fig, width="stretch", key="projection.map", on_select="rerun",
                            selection_mode=("box", "lasso"))
    chosen_ids = charts.selected_ids(fig, (getattr(map_event, "selection", None) or {}).get("points", []))
    picked = frame[frame["id"].isin(chosen_ids)] if chosen_ids else frame.loc[frame["highlight"] != ""]
    if not chosen_ids:
        st.caption("Hover a point for its token; drag a box or a lasso (toolbar, top right) to list the points "
                   "below; double-click to clear.")
else:
    chart = charts.projection_scatter(frame, axis_titles=proj.axis_titles, colour_title=colours.title,
                                      colour_order=colours.order)
    event = st.altair_chart(chart, width="stretch", on_select="rerun", key="projection.chart")
    picked = frame.iloc[0:0]
    chosen: dict[str, Any] = dict(getattr(event, "selection", None) or {})
    box = chosen.get("brush") or {}
    if isinstance(box, dict) and "x" in box and "y" in box:
        picked = pj.points_in_box(frame, box["x"], box["y"])
    clicks = chosen.get("pick") or []
    if isinstance(clicks, list) and clicks:
        ids = {int(c["id"]) for c in clicks if isinstance(c, dict) and "id" in c}
        picked = pd.concat([picked, frame[frame["id"].isin(ids)]]).drop_duplicates("id")
    if picked.empty:
        picked = frame.loc[frame["highlight"] != ""]
        st.caption("Drag a box or click points (shift-click for more) to list them below.")

if hood is not None and hood.positions:
    near = pd.DataFrame({"token": [frame["token"].iat[p] for p in hood.positions],
                         "id": [int(proj.selection.indices[p]) for p in hood.positions],
                         "cosine": [round(s, 4) for s in hood.similarities]})
    st.subheader(f"Nearest to {hood.query!r} among the points")
    st.dataframe(near, hide_index=True, width="stretch")
if not picked.empty:
    st.subheader(f"{len(picked):,} selected point(s)")
    if len(picked) > TABLE_ROWS:
        st.caption(f"The table lists the first {TABLE_ROWS:,}; the CSV download below has every point.")
    st.dataframe(picked.head(TABLE_ROWS).drop(columns=["highlight"], errors="ignore")
                 .rename(columns={"colour": colours.title}), hide_index=True, width="stretch")

if proj.explained_variance is not None:
    st.altair_chart(charts.explained_variance_bar(proj.explained_variance, shown=proj.dims), width="stretch")

state.PROJECTION_LAST.set(pkey)
state.PROJECTION_LAST_CHART.set(chart)

# -- downloads --------------------------------------------------------------------------------------------
d1, d2, d3 = st.columns(3)
current = proj
d1.download_button("Coordinates (CSV)", data=lambda: ex.coordinates_csv(m, current),
                   file_name=f"{method}-{dims}d-coordinates.csv", mime="text/csv", key="projection.csv")
if isinstance(chart, alt.TopLevelMixin):
    shown_chart = chart
    d2.download_button("Chart (PNG)", data=lambda: ex.chart_image(shown_chart, "png"),
                       file_name=f"{method}-projection.png", mime="image/png", key="projection.png")
    d3.download_button("Chart (SVG)", data=lambda: ex.chart_image(shown_chart, "svg"),
                       file_name=f"{method}-projection.svg", mime="image/svg+xml", key="projection.svg")
