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
pieces = m.lookup(text, special=special) if text.strip() else []
known = [p for p in pieces if not p.unknown]
for p in pieces:
    if p.unknown:
        span = text[p.start:p.end] or p.token
        st.error(str(TokenNotFound(span, m.suggest(span),
                                   detail=f"the tokenizer maps it to {p.token}" if p.id >= 0 else "")))

if known:
    kinds = m.kinds
    table = pd.DataFrame({
        "piece": [p.token for p in known], "id": [p.id for p in known],
        "kind": [kinds[p.id] for p in known], "norm": [float(m.norms[p.id]) for p in known],
        "text": [text[p.start:p.end] for p in known],
    })
    st.subheader(f"{len(known)} piece(s), {m.dim} values each")
    st.dataframe(table, hide_index=True, width="stretch")

    labels = list(dict.fromkeys(f"{p.token} ({p.id})" for p in known))
    vectors = {f"{p.token} ({p.id})": np.asarray(m.vectors[p.id]) for p in known}
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

    rows = [{"token": p.token, "id": p.id, **{f"d{i}": float(v) for i, v in enumerate(m.vectors[p.id])}}
            for p in known]
    d1, d2 = st.columns(2)
    d1.download_button("Vectors as CSV", pd.DataFrame(rows).to_csv(index=False), "vectors.csv", "text/csv",
                       key="lookup.csv")
    payload = {"text": text, "pieces": [{"token": p.token, "id": p.id, "norm": float(m.norms[p.id]),
                                         "vector": np.asarray(m.vectors[p.id]).astype(float).tolist()}
                                        for p in known]}
    d2.download_button("Vectors as JSON", json.dumps(payload), "vectors.json", "application/json",
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
