"""Export: the matrix (or some rows) as Projector TSV, word2vec, safetensors or .npy; coordinates and charts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import export as ex
from core import projection as pj
from core.access import check_allowed
from dashboard import cached, longrun, state
from dashboard.ui import current_matrix, shown_errors

FORMAT_LABELS = {
    "projector": "Projector TSV (vectors.tsv + metadata.tsv)",
    "word2vec": "word2vec text",
    "word2vec-bin": "word2vec binary",
    "safetensors": "safetensors + tokens",
    "npy": ".npy + vocab.txt",
}
ROW_LABELS = {"Every row": "all", "First N rows": "first", "Random sample": "random",
              "Stratified by kind": "stratified", "The points of the last projection": "projection"}

m = current_matrix()
mkey = cached.key_of(m)
st.title("Export")
st.caption("Every export is written to a new file or folder (a temp name, then a rename) and reopens through "
           "Embedscope's own loaders to the same tokens and values.")

fmt = st.selectbox("Format", ex.EXPORT_FORMATS, format_func=FORMAT_LABELS.__getitem__, key="export.format")
r1, r2, r3 = st.columns([3, 2, 2])
which = ROW_LABELS[r1.radio("Rows", list(ROW_LABELS), key="export.rows")]
# The projection this session looked at last on the Projection page (while it is still kept), and its chart.
last_key = state.PROJECTION_LAST.get()
last_proj: pj.Projection | None = (longrun.cached("projection", last_key)
                                   if isinstance(last_key, tuple) and last_key[0] == mkey else None)
last_chart = state.PROJECTION_LAST_CHART.get() if last_proj is not None else None
rows = None
described = f"all {len(m):,} rows"
with shown_errors():
    if which in ("first", "random", "stratified"):
        n = int(r2.number_input("How many", min_value=1, max_value=len(m), value=min(10_000, len(m)),
                                key="export.sample"))
        seed = int(r3.number_input("Seed", min_value=0, value=0, key="export.seed"))
        sel = pj.select(m, pj.SelectionConfig(sampling=which, sample=n, seed=seed))
        rows, described = sel.indices, sel.description
    elif which == "projection":
        if last_proj is None:
            st.info("No projection of this matrix yet in this session: run one on the Projection page.")
            st.stop()
        rows, described = last_proj.selection.indices, last_proj.selection.description

columns: list[str] | None = None
if fmt == "projector":
    extra = [c for c in m.metadata.columns if c != "token"]
    default = [c for c in extra if c not in ("id", "kind")]
    columns = st.multiselect("Metadata columns after the token", extra, default=default, key="export.columns",
                             help="one column (the token) is written without a header row; with more columns "
                                  "the first row is a header, as the Projector expects")
n_rows = len(m) if rows is None else len(rows)
st.caption(f"{FORMAT_LABELS[fmt]}: {described} ({n_rows:,} × {m.dim}).")

download, save = st.tabs(["Download", "Write on the server"])
with download:
    name = "embeddings"
    chosen_rows, chosen_cols = rows, columns
    st.download_button(
        f"Download {ex.download_name(fmt, name)}",
        data=lambda: ex.export_bytes(m, fmt, rows=chosen_rows, columns=chosen_cols, name=name)[0],
        file_name=ex.download_name(fmt, name), key="export.download",
        mime="application/zip" if fmt in ex.FOLDER_FORMATS else "application/octet-stream")
    st.caption("The file is built when you click." + (" Folders come as a zip." if fmt in ex.FOLDER_FORMATS else ""))
with save:
    kind = "folder" if fmt in ex.FOLDER_FORMATS else "file"
    out = st.text_input(f"New {kind} to write", key="export.out",
                        placeholder="exports/minilm" if kind == "folder" else "exports/minilm.txt")
    force = st.checkbox("Replace it if it exists", value=False, key="export.force")
    check = st.checkbox("Reopen it afterwards to check tokens and values", value=True, key="export.verify")
    if longrun.was_cancelled("export"):
        st.warning("Cancelled; nothing was written.")
    if st.button("Write", key="export.go", type="primary", disabled=not out.strip()):
        with shown_errors(stop=False):
            target = check_allowed(out.strip())
            with longrun.panel("export", "Writing") as progress:
                done = ex.export(m, target, fmt, rows=rows, columns=columns, force=force, progress=progress)
            st.success(f"Wrote {done.rows:,} × {done.dim} as {fmt} to {done.target}")
            st.dataframe(pd.DataFrame({"file": [f.name for f in done.files],
                                       "bytes": [f.stat().st_size for f in done.files]}),
                         hide_index=True, width="stretch")
            for note in done.notes:
                st.caption(f"Note: {note}")
            if check:
                back = ex.verify(m, done, rows)
                st.success(f"Reopened through core.load as {back.provenance.format}: the same {len(back):,} tokens "
                           "and values.")

# -- coordinates and charts ----------------------------------------------------------------------------------
st.divider()
st.subheader("Projected coordinates and charts")
if last_proj is None:
    st.info("Run a projection on the Projection page; its coordinates (token,id,x,y[,z]) and its chart can be "
            "exported here, or from under the chart.")
else:
    proj = last_proj
    st.caption(proj.caption)
    c1, c2, c3 = st.columns(3)
    c1.download_button("Coordinates (CSV)", data=lambda: ex.coordinates_csv(m, proj),
                       file_name=f"{proj.config.method}-{proj.dims}d-coordinates.csv", mime="text/csv",
                       key="export.coords")
    if last_chart is not None:
        chart = last_chart
        c2.download_button("Chart (PNG)", data=lambda: ex.chart_image(chart, "png"), file_name="projection.png",
                           mime="image/png", key="export.png")
        c3.download_button("Chart (SVG)", data=lambda: ex.chart_image(chart, "svg"), file_name="projection.svg",
                           mime="image/svg+xml", key="export.svg")
    else:
        c2.caption("3-D views download as interactive HTML from the Projection page.")
    out_csv = st.text_input("Or write the CSV on the server", key="export.coords_out",
                            placeholder="exports/coordinates.csv")
    force_csv = st.checkbox("Replace it if it exists", value=False, key="export.coords_force")
    if st.button("Write CSV", key="export.coords_go", disabled=not out_csv.strip()):
        with shown_errors(stop=False):
            path = ex.write_coordinates(m, proj, check_allowed(out_csv.strip()), force=force_csv)
            st.success(f"Wrote {len(proj):,} rows to {Path(path)}")
