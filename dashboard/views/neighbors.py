"""Neighbours & analogies: what sits around a token, a word, or ``king - man + woman``; the odd one out."""

from __future__ import annotations

import streamlit as st

from core import charts, search
from core.matrix import EmbeddingMatrix
from dashboard import cached
from dashboard.ui import current_matrix, shown_errors


def _default_query(m: EmbeddingMatrix) -> str:
    if "king" in m.key_to_index:
        return "king"
    return next((t for t, kind in zip(m.index_to_key, m.kinds, strict=True) if kind == "word"), m.index_to_key[0])


m = current_matrix()
cached.search_prepared(m)
st.title("Neighbours & analogies")
near, odd = st.tabs(["Nearest neighbours and analogies", "Which one doesn't belong?"])

with near:
    c1, c2, c3 = st.columns([4, 1, 1])
    query = c1.text_input(
        "Query", value=_default_query(m), key="nb.query",
        help="A token, a word (the tokenizer may split it; its vector is then the mean of its pieces), or a "
             "formula such as king - man + woman. Quote texts that contain + or -, e.g. \"new york\" - usa.")
    k = int(c2.number_input("k", min_value=1, max_value=min(1000, len(m)), value=min(10, len(m)), key="nb.k"))
    metric = c3.selectbox("Metric", search.METRICS, key="nb.metric")
    a, b, c, d, e = st.columns([2, 1, 1, 1, 2])
    method_label = a.radio("Analogy method", ["3CosAdd", "3CosMul"], key="nb.method", horizontal=True,
                           help="3CosAdd = gensim most_similar; 3CosMul = most_similar_cosmul (cosine only)")
    hide_special = b.checkbox("Hide special", value=True, key="nb.hide_special")
    hide_subwords = c.checkbox("Hide subwords", value=False, key="nb.hide_subwords")
    hide_numbers = d.checkbox("Hide numbers", value=False, key="nb.hide_numbers")
    first_n = int(e.number_input("Only the first N rows (0 = all)", min_value=0, max_value=len(m), value=0,
                                 step=1000, key="nb.first_n",
                                 help="word2vec files list words by frequency, so this keeps common words"))
    method = "mul" if method_label == "3CosMul" else "add"
    if method == "mul" and metric != "cosine":
        st.info("3CosMul is defined on cosine similarity; the metric is set aside.")
    filters = search.Filters(hide_special=hide_special, hide_subwords=hide_subwords,
                                 hide_numbers=hide_numbers, first_n=first_n or None)
    if query.strip():
        with shown_errors():
            res = cached.neighbors(m, query, k, metric, method, filters)
        for term in res.query.averaged:
            st.info(term.describe() + ".")
        if res.query.is_formula:
            name = "3CosMul" if method == "mul" else ("3CosAdd" if metric == "cosine" else f"{metric} of the sum")
            st.caption(f"Read as a formula ({name}): {res.query.notes()[0].removeprefix('formula: ')}. "
                       "Single-token terms are left out of the results, as gensim does.")
        elif res.query.terms[0].single and res.query.terms[0].pieces[0].token != res.query.terms[0].text:
            st.caption(res.query.terms[0].describe() + ".")
        if not res.neighbors:
            st.warning("No neighbours: the filters leave no candidate rows.")
        else:
            frame = res.to_frame()
            left, right = st.columns([2, 3])
            left.dataframe(frame, hide_index=True, width="stretch",
                           column_config={"score": st.column_config.NumberColumn(format="%.4f")})
            right.altair_chart(charts.neighbor_bars(frame["token"].tolist(), frame["score"].tolist(), res.metric),
                               width="stretch")
            st.download_button("Neighbours as CSV", frame.to_csv(index=False), "neighbours.csv", "text/csv",
                               key="nb.csv")

with odd:
    words = st.text_input("Words, separated by commas", value="breakfast, cereal, dinner, lunch",
                          key="nb.odd", help="Like gensim doesnt_match: the word furthest from the mean.")
    items = [w.strip() for w in words.split(",") if w.strip()]
    if items:
        with shown_errors():
            out = search.doesnt_match(m, items)
        for err in out.missing:
            st.warning(str(err))
        st.success(f"Doesn't belong: **{out.odd}**")
        st.altair_chart(charts.neighbor_bars([w for w, _ in out.ranking], [s for _, s in out.ranking], "cosine",
                                             title="Cosine to the mean of all words"), width="stretch")
        for term in out.terms:
            if not term.single:
                st.caption(term.describe() + ".")
