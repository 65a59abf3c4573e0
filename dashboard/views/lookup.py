"""Token lookup: text → the tokenizer's pieces → ids → rows, and how close a few words are."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from core import charts, stats
from core.errors import TokenNotFound
from dashboard.ui import current_matrix

m = current_matrix()
st.title("Token lookup")
st.caption("Type any text: the model's own tokenizer splits it into pieces; each piece is a row of the matrix."
           if m.has_tokenizer else "Words are looked up directly in the vocabulary.")

c1, c2 = st.columns([4, 1])
text = c1.text_input("Text", value="Hello", key="lookup.text")
special = c2.checkbox("Special tokens", value=False, key="lookup.special",
                      help="show [CLS]/[SEP]-like tokens the tokenizer adds")
looked = stats.lookup(m, text, special=special) if text.strip() else None
for err in looked.errors if looked else ():
    st.error(str(err))

if looked and looked.known:
    st.subheader(f"{len(looked.known)} piece(s), {m.dim} values each")
    st.dataframe(looked.table(), hide_index=True, width="stretch")

    vectors = {p.label: np.asarray(p.vector) for p in looked.known}
    labels = list(vectors)
    st.altair_chart(charts.vector_lines(vectors, first=100), width="stretch")

    left, right = st.columns(2)
    with left:
        pick = st.selectbox("Top dimensions of", labels, key="lookup.pick")
        st.altair_chart(charts.top_dims_bar(stats.top_dims(vectors[pick], 15)), width="stretch")
    with right:
        if len(labels) > 1:
            sim = stats.cosine_matrix(np.stack([vectors[lab] for lab in labels]))
            st.altair_chart(charts.similarity_heatmap(labels, sim, title="Cosine between the pieces"),
                            width="stretch")
        else:
            st.info("Type more than one piece to see the cosine between them.")

    d1, d2 = st.columns(2)
    d1.download_button("Vectors as CSV", looked.vectors_frame().to_csv(index=False), "vectors.csv", "text/csv",
                       key="lookup.csv")
    # the same JSON as `embedscope lookup --json --allow-unknown`
    d2.download_button("Vectors as JSON", json.dumps(looked.to_json()), "vectors.json", "application/json",
                       key="lookup.json")

st.divider()
st.subheader("How close are a few words?")
words_text = st.text_input("Words or short texts, separated by commas", value="Hello, Hi, Apple",
                           key="lookup.compare")
words = [w.strip() for w in words_text.split(",") if w.strip()][:8]
found: dict[str, np.ndarray] = {}
for w in words:
    try:
        vec, ps = m.text_vector(w)
    except TokenNotFound as err:
        st.warning(str(err))
        continue
    found[w if len(ps) == 1 else f"{w} (mean of {len(ps)} pieces)"] = np.asarray(vec)
if len(found) >= 2:
    names = list(found)
    sim = stats.cosine_matrix(np.stack([found[n] for n in names]))
    st.altair_chart(charts.similarity_heatmap(names, sim), width="stretch")
    st.dataframe(pd.DataFrame(sim, index=names, columns=names).round(4), width="stretch")
