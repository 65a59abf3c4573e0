"""Similarity heatmap: cosine between every pair of a list of words or texts, optionally clustered."""

from __future__ import annotations

import re

import streamlit as st

from core import charts, search
from dashboard.ui import current_matrix, shown_errors

#: More cells than a person can read; the chart also stops annotating past 30 items.
MAX_ITEMS = 70

m = current_matrix()
st.title("Similarity heatmap")
st.caption("Cosine similarity between every pair. A text the tokenizer splits is the mean of its pieces; "
           "unknown words are listed and left out.")

text = st.text_area("Words or texts (one per line, or separated by commas)",
                    value="dog, cat, pet, puppy, car, truck, bus, apple, banana, fruit", key="hm.items")
c1, c2, c3 = st.columns(3)
cluster = c1.checkbox("Order by hierarchical clustering", value=False, key="hm.cluster",
                      help="average linkage on 1 − cosine, optimal leaf order (scipy)")
annotate = c2.checkbox("Show values in the cells", value=True, key="hm.annotate")
linkage = c3.selectbox("Linkage", ["average", "complete", "single", "weighted"], key="hm.linkage",
                       disabled=not cluster)

items = [s.strip() for s in re.split(r"[,\n]", text) if s.strip()]
if len(items) > MAX_ITEMS:
    st.warning(f"{len(items)} items given; the heatmap shows the first {MAX_ITEMS}.")
    items = items[:MAX_ITEMS]
if not items:
    st.info("Type two or more words or texts.")
    st.stop()

with shown_errors():
    table = search.similarity_matrix(m, items, cluster=cluster, method=linkage)
for err in table.missing:
    st.warning(str(err))
for term in table.terms:
    if not term.single:
        st.caption(term.describe() + ".")

if len(table.labels) < 2:
    st.info("At least two known items are needed for a heatmap.")
    st.stop()

chart = charts.similarity_heatmap(table.labels, table.matrix, annotate=annotate,
                                  title="Cosine similarity" + (" (clustered)" if table.clustered else ""))
st.altair_chart(chart, width="stretch")
frame = table.to_frame()
with st.expander("Table"):
    st.dataframe(frame.round(4), width="stretch")
d1, d2 = st.columns(2)
d1.download_button("Matrix as CSV", frame.to_csv(), "similarity.csv", "text/csv", key="hm.csv")
d2.download_button("Heatmap as PNG", lambda: charts.chart_png(chart), "similarity.png", "image/png",
                   key="hm.png")
