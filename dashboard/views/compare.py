"""Compare: what moved between two matrices (a fine-tune and its source, two releases), and what a quantised
copy would cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core import charts, evaluate
from core import compare as cp
from core.access import check_allowed, save_uploads
from core.errors import EmbedscopeError
from core.matrix import EmbeddingMatrix
from core.numfmt import distinct
from dashboard import cached, longrun, state
from dashboard.ui import full_value, metric_value, shown_errors

ALIGN = {"Auto": None, "Align (Procrustes)": True, "Don't align": False}
SORT_LABELS: dict[cp.SortKey, str] = {"drift": "drift (largest first)", "jaccard": "Jaccard (smallest first)",
               "norm_change": "norm change (largest first)", "token": "token (A–Z)"}
CORPUS_KINDS = ["No filter", "Bundled demo corpus", "Path", "Upload"]


def _pair(specs: list[state.SourceSpec]) -> state.Pair:
    """The chosen (A, B): the Fine-tune page's pair when it sent one, else the last choice, else a default."""
    pre = state.preselected(state.COMPARE_PRESELECT, state.COMPARE_APPLIED)
    if pre is not None:
        state.COMPARE_PAIR.set(pre)
    pair = state.COMPARE_PAIR.get()
    if not (isinstance(pair, tuple) and len(pair) == 2 and pair[0] in specs and pair[1] in specs):
        current = state.current()
        a = specs[0]
        b = current if current != a else (specs[1] if len(specs) > 1 else a)
        pair = (a, b)
        state.COMPARE_PAIR.set(pair)
    return pair


def _keep_pair() -> None:
    state.COMPARE_PAIR.set((st.session_state["compare.a"], st.session_state["compare.b"]))


def _open(spec: state.SourceSpec, side: str) -> EmbeddingMatrix | None:
    try:
        return cached.matrix(spec)
    except EmbedscopeError as err:
        st.error(f"{side} ({spec.title}): {err}")
        return None


def _corpus_filter(a: EmbeddingMatrix, key_a: str) -> tuple[Any, str]:
    """Rows of A whose token occurs in the chosen corpus (None: no filter), and a caption."""
    c1, c2 = st.columns([2, 3])
    kind = c1.radio("Only tokens of a corpus", CORPUS_KINDS, horizontal=True, key="compare.corpus_kind",
                    help="e.g. the fine-tuning corpus: tokenised exactly as fine-tuning does")
    path: str | None = None
    trusted = False
    if kind == "Bundled demo corpus":
        from core.finetune import demo_corpus

        path, trusted = str(demo_corpus()), True
    elif kind == "Path":
        typed = c2.text_input("Corpus file", key="compare.corpus_path", help="one document a line, or .jsonl/.csv")
        path = typed.strip() or None
    elif kind == "Upload":
        up = c2.file_uploader("Corpus file", type=["txt", "jsonl", "csv", "tsv"], key="compare.corpus_upload")
        if up is not None:
            with shown_errors(stop=False):
                path = str(save_uploads([(up.name, up.getvalue())], cached.upload_root()) / up.name)
                trusted = True
    if not path:
        return None, ""
    with shown_errors(stop=False):
        checked = path if trusted else str(check_allowed(path))
        rows = cached.corpus_rows(a, checked)
        return rows, f"Only tokens of `{Path(checked).name}` ({rows.size:,} distinct tokens in A)."
    return None, ""


st.title("Compare")
st.caption("Which tokens moved between A (before) and B (after), did their neighbourhoods change, and did the "
           "space get better or worse. Tokens are matched by their string.")

specs = state.opened()
spec_a, spec_b = _pair(specs)
st.session_state["compare.a"] = spec_a
st.session_state["compare.b"] = spec_b
s1, s2 = st.columns(2)
s1.selectbox("A (before)", specs, format_func=lambda s: s.title, key="compare.a", on_change=_keep_pair)
s2.selectbox("B (after)", specs, format_func=lambda s: s.title, key="compare.b", on_change=_keep_pair)
o1, o2, o3, o4 = st.columns(4)
k = int(o1.number_input("k (neighbours for Jaccard@k)", min_value=1, max_value=100, value=10, key="compare.k"))
align_label = o2.selectbox("Alignment", list(ALIGN), key="compare.align",
                           help="Auto: rotate A onto B by orthogonal Procrustes, unless B is a fine-tune of A "
                                "(its run.json says so) or a quantised copy, which share A's space; never when "
                                "the dimensions differ")
align_on = int(o3.number_input("Fit the rotation on the first N shared tokens (0 = all)", min_value=0, value=0,
                               step=1000, key="compare.align_on"))
limit = int(o4.number_input("Compare only the first N shared tokens (0 = all)", min_value=0, value=0, step=1000,
                            key="compare.limit", help="for very large vocabularies"))

opened_a = _open(spec_a, "A")
b = _open(spec_b, "B")
if opened_a is None:
    st.stop()
a: EmbeddingMatrix = opened_a
key_a = cached.key_of(a)

if b is None:
    pass
elif len(specs) < 2:
    st.info("Only one matrix is open. Open another in the sidebar, or fine-tune this one and press "
            "**Compare with the original** on the Fine-tune page. The quantisation impact of A is below.")
else:
    bm: EmbeddingMatrix = b
    key_b = cached.key_of(bm)
    align = ALIGN[align_label]
    ckey = ("compare", key_a, key_b, k, align, align_on or None, limit or None)
    with shown_errors():
        c: cp.Comparison = longrun.once(
            "compare", ckey, lambda progress: cp.compare(a, bm, k=k, align=align, align_on=align_on or None,
                                                         limit=limit or None, progress=progress), "Comparing")
    summ = c.summary()

    st.subheader("Vocabulary")
    v1, v2, v3, v4 = st.columns(4)
    v1.metric("shared tokens", f"{c.shared:,}")
    v2.metric("only in A", f"{c.only_a:,}")
    v3.metric("only in B", f"{c.only_b:,}")
    v4.metric("compared", f"{c.compared:,}")
    if c.only_a or c.only_b:
        with st.expander("Tokens only one of them has"):
            e1, e2 = st.columns(2)
            e1.write(", ".join(f"`{t}`" for t in c.vocab.only_a[:200]) or "none")
            e2.write(", ".join(f"`{t}`" for t in c.vocab.only_b[:200]) or "none")
    st.caption(f"**Alignment:** {c.alignment}. Took {c.seconds:.1f} s."
               + (" **Neighbours: approximate** (too many tokens for the exact search here; see the note below)."
                  if c.search == "approximate" else ""))
    if c.identical:
        st.success("A and B are identical (the same content fingerprint): no token moved, every neighbourhood "
                   "is kept.", icon=":material/check_circle:")
    for note in c.notes[1:] if c.identical else c.notes:
        st.caption(f"Note: {note}")
    if not c.has_drift:
        st.info(f"A has {c.dim_a} dimensions and B {c.dim_b}: they are compared by neighbourhoods only "
                "(Jaccard@k); drift and the joint projection need one space.")

    st.subheader("Summary")
    m1, m2, m3, m4, m5, m6 = st.columns(6)
    m1.metric("mean drift", metric_value(summ.mean_drift), help=full_value(summ.mean_drift))
    m2.metric("median drift", metric_value(summ.median_drift), help=full_value(summ.median_drift))
    m3.metric("p99 drift", metric_value(summ.p99_drift), help=full_value(summ.p99_drift))
    m4.metric("neighbourhood changed", f"{summ.changed_share:.1%}", help=f"share of tokens whose {k} nearest "
              "neighbours are not the same in A and B")
    m5.metric(f"median Jaccard@{k}", metric_value(summ.median_jaccard), help=full_value(summ.median_jaccard))
    norm_a, norm_b = distinct([summ.mean_norm_a, summ.mean_norm_b])
    m6.metric("mean norm", norm_b, delta=f"{summ.mean_norm_change:+.3g}",
              help=f"B's mean row norm; A's is {norm_a}")

    st.subheader("Moved most")
    rows_a, corpus_caption = _corpus_filter(a, key_a)
    t1, t2, t3 = st.columns([2, 2, 1])
    sort = t1.selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.__getitem__, key="compare.sort")
    contains = t2.text_input("Filter tokens", key="compare.filter", placeholder="text the token contains")
    top = int(t3.number_input("Rows", min_value=10, max_value=5000, value=200, step=50, key="compare.top"))
    with shown_errors():
        frame = c.table(sort, top, contains=contains, rows_a=rows_a)
    if corpus_caption:
        st.caption(corpus_caption)
    st.dataframe(frame, hide_index=True, width="stretch", key="compare.table", column_config={
        "drift": st.column_config.NumberColumn(format="%.5f", help="1 − cosine after alignment"),
        "jaccard": st.column_config.NumberColumn(f"Jaccard@{k}", format="%.3f"),
        "norm_a": st.column_config.NumberColumn("norm A", format="%.4f"),
        "norm_b": st.column_config.NumberColumn("norm B", format="%.4f"),
        "norm_change": st.column_config.NumberColumn("norm change", format="%+.4f"),
        "neighbors_a": st.column_config.TextColumn(f"{k} neighbours in A"),
        "neighbors_b": st.column_config.TextColumn(f"{k} neighbours in B")})
    st.download_button("Table as CSV", frame.to_csv(index=False), "moved-most.csv", "text/csv",
                       key="compare.csv")

    h1, h2 = st.columns(2)
    if c.drift is not None:
        h1.altair_chart(charts.drift_histogram(c.drift), width="stretch")
    h2.altair_chart(charts.jaccard_bars(c.jaccard, c.k), width="stretch")
    if c.drift is not None:
        points = pd.DataFrame({"token": c.tokens, "drift": c.drift, "jaccard": c.jaccard})
        st.altair_chart(charts.drift_jaccard_scatter(points), width="stretch")

    st.subheader("One token")
    default_token = frame["token"].iloc[0] if len(frame) else c.tokens[0]
    if "compare.token" not in st.session_state or st.session_state.get("compare.token_pair") != ckey:
        st.session_state["compare.token"] = default_token
        st.session_state["compare.token_pair"] = ckey
    token = st.text_input("Token", key="compare.token", help="any compared token; the top of the table by default")
    if token.strip():
        with shown_errors(stop=False):
            det = cp.token_detail(c, a, b, token.strip())
            d1, d2, d3, d4 = st.columns(4)
            d1.metric("drift", metric_value(det.drift), help=full_value(det.drift))
            d2.metric(f"Jaccard@{k}", metric_value(det.jaccard))
            d3.metric("norm", metric_value(det.norm_b), delta=f"{det.norm_b - det.norm_a:+.3g}",
                      help=full_value(det.norm_b))
            d4.metric("|B − A|", metric_value(det.difference_norm), help=full_value(det.difference_norm))
            st.dataframe(det.frame(), hide_index=True, width="stretch", key="compare.detail", column_config={
                "cosine in A": st.column_config.NumberColumn(format="%.4f"),
                "cosine in B": st.column_config.NumberColumn(format="%.4f")})
            if det.common:
                st.caption(f"In both: {', '.join(det.common)}")
            if det.vector_a is not None and det.vector_b is not None:
                st.altair_chart(charts.vector_difference_chart(det.vector_a, det.vector_b,
                                                               title=f"{det.token!r}: the dimensions that changed "
                                                                     "most (B − A" + (" after alignment)" if c.aligned
                                                                                      else ")")), width="stretch")

    if c.has_drift:
        st.subheader("Joint projection")
        st.caption("One projection fitted on A and B together, so positions are comparable; arrows go from each "
                   "followed token's place in A to its place in B.")
        j1, j2, j3, j4 = st.columns([3, 1, 1, 1])
        follow = j1.text_input("Follow these tokens", key="compare.follow", placeholder="e.g. rates, cut, bank",
                               help="comma-separated; the 10 most moved tokens are followed too")
        method = j2.radio("Method", ["PCA", "UMAP"], horizontal=True, key="compare.method")
        mode = j3.radio("View", ["Overlay", "Side by side"], key="compare.mode")
        sample = int(j4.number_input("Context tokens", min_value=0, max_value=2000, value=800, step=100,
                                     key="compare.sample"))
        names = tuple(t.strip() for t in follow.split(",") if t.strip())
        run_it = method == "PCA" or st.button("Run UMAP", key="compare.umap", type="primary")
        if run_it:
            with shown_errors(stop=False):
                jp = longrun.once("joint", (ckey, names, sample, method.lower()),
                                  lambda _progress: cp.joint_projection(c, a, bm, names, sample=sample,
                                                                        method=method.lower(), seed=0),
                                  f"Projecting A and B together ({method})")
                st.altair_chart(charts.joint_projection_chart(jp.frame, axis_titles=jp.axis_titles,
                                                              mode="overlay" if mode == "Overlay" else "side"),
                                width="stretch")
                st.caption(jp.caption)

    st.subheader("Benchmarks")
    standard = evaluate.standard_sets()
    b1, b2 = st.columns(2)
    chosen = b1.multiselect("Standard sets", list(standard), key="compare.bench_sets",
                            help="gensim's copies of questions-words.txt, WordSim353 and SimLex-999")
    ups = b2.file_uploader("Or upload benchmark files (analogies: ': section' + 4 words; pairs: word1<TAB>word2"
                           "<TAB>score)", accept_multiple_files=True, key="compare.bench_upload")
    analogies: list[str] = [n for n in chosen if evaluate.STANDARD_SETS[n] == "analogies"]
    pairs: list[str] = [n for n in chosen if evaluate.STANDARD_SETS[n] == "pairs"]
    if ups:
        with shown_errors(stop=False):
            folder = save_uploads(((f.name, f.getvalue()) for f in ups), cached.upload_root())
            for f in ups:
                first = f.getvalue()[:4096].decode("utf-8", "replace").lstrip()
                (analogies if first.startswith(":") else pairs).append(str(folder / f.name))
    if (analogies or pairs) and st.button("Run the benchmarks on A and B", key="compare.bench_run"):
        with shown_errors(stop=False):
            res = longrun.once("deltas", (key_a, key_b, tuple(analogies), tuple(pairs)),
                               lambda _progress: cp.benchmark_deltas(a, bm, analogies, pairs),
                               "Running the benchmarks on A and B")
            st.dataframe(cp.deltas_frame(res), hide_index=True, width="stretch", key="compare.bench", column_config={
                "A": st.column_config.NumberColumn(format="%.4f"), "B": st.column_config.NumberColumn(format="%.4f"),
                "delta": st.column_config.NumberColumn(format="%+.4f"),
                "coverage A": st.column_config.NumberColumn(format="percent"),
                "coverage B": st.column_config.NumberColumn(format="percent")})

# -- quantisation impact of A -------------------------------------------------------------------------
st.subheader("Quantisation impact")
st.caption(f"What storing A (`{spec_a.title}`) in fp16, bf16 or int8 (one absmax scale per row) would cost: "
           "each copy is made on the fly and compared with A (no alignment: the copies share A's space).")
q1, q2, q3 = st.columns([3, 1, 1])
formats = q1.multiselect("Formats", list(cp.QUANT_FORMATS), default=list(cp.QUANT_FORMATS), key="compare.q_formats")
qk = int(q2.number_input("k", min_value=1, max_value=100, value=10, key="compare.q_k"))
qlimit = int(q3.number_input("First N tokens (0 = all)", min_value=0, value=0, step=1000, key="compare.q_limit"))
qkey = ("quant", key_a, tuple(formats), qk, qlimit or None)
qrep: cp.QuantReport | None = longrun.cached("quant", qkey)
if qrep is None and formats and st.button("Measure", key="compare.q_run", type="primary"):
    with shown_errors():
        qrep = longrun.once("quant", qkey, lambda progress: cp.quantization_impact(a, formats, k=qk,
                                                                                   limit=qlimit or None,
                                                                                   progress=progress),
                            "Quantising")
if qrep is not None:
    st.dataframe(qrep.frame(), hide_index=True, width="stretch", key="compare.q_table", column_config={
        "MiB": st.column_config.NumberColumn(format="%.1f"),
        "saved": st.column_config.NumberColumn(format="percent"),
        "mean_drift": st.column_config.NumberColumn("mean drift", format="%.2e"),
        "p99_drift": st.column_config.NumberColumn("p99 drift", format="%.2e"),
        "max_drift": st.column_config.NumberColumn("max drift", format="%.2e"),
        "median_jaccard": st.column_config.NumberColumn(f"median Jaccard@{qrep.k}", format="%.3f"),
        "mean_jaccard": st.column_config.NumberColumn(f"mean Jaccard@{qrep.k}", format="%.3f"),
        "changed_share": st.column_config.NumberColumn("neighbourhood changed", format="percent")})
    if qrep.search == "approximate":
        st.caption(f"Note: neighbours are approximate (NN-descent graphs), so a few Jaccard@{qrep.k} values may "
                   "differ from the exact search's.")
    if any(i.overflow for i in qrep.impacts):
        st.warning("Some rows overflow in fp16 (values beyond ±65,504 become infinite); bf16 keeps float32's range.")
    e1, e2 = st.columns([1, 3])
    out_fmt = e1.selectbox("Export the copy as", list(cp.QUANT_FORMATS), key="compare.q_export")
    e2.download_button(f"Download the {out_fmt} copy (safetensors, zip)",
                       data=lambda: cached.quantized_zip(a, out_fmt), file_name=f"embeddings-{out_fmt}.zip",
                       mime="application/zip", key="compare.q_download",
                       help="fp16/bf16 reopen in Embedscope; int8 holds int8 values and one scale per row")
