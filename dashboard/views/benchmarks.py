"""Benchmarks: word-analogy accuracy and word-pair correlations, with gensim's definitions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial

import pandas as pd
import streamlit as st

from core import charts, evaluate
from core.access import check_allowed
from dashboard import cached, longrun, state
from dashboard.ui import current_matrix, shown_errors


def _sources(kind: str, many: bool, delimiter: str | None = "\t") -> list[Callable[[], object]]:
    """Widgets that choose benchmark files; returns one reader per chosen file (read only on Run)."""
    prefix = kind
    names = [n for n, k in evaluate.STANDARD_SETS.items() if k == kind and n in standard]
    how = st.radio("File from", (["Standard set"] if names else []) + ["Upload", "Path"], horizontal=True,
                   key=f"bm.{prefix}.from")
    if kind == "analogies":
        parse: Callable[..., object] = evaluate.parse_analogies
        read: Callable[..., object] = evaluate.read_analogies
    else:
        parse = partial(evaluate.parse_pairs, delimiter=delimiter)
        read = partial(evaluate.read_pairs, delimiter=delimiter)
    if how == "Standard set":
        picked = (st.multiselect("Standard sets (shipped with gensim)", names, default=names, key=f"bm.{prefix}.std")
                  if many else [st.selectbox("Standard set (shipped with gensim)", names, key=f"bm.{prefix}.std")])
        return [partial(read, standard[n], name=n) for n in picked if n]
    if how == "Upload":
        help_ = ("': section' lines and 4-word questions, like questions-words.txt" if kind == "analogies"
                 else "word1<TAB>word2<TAB>score lines, like WordSim353; '#' starts a comment")
        files = st.file_uploader("Benchmark file" + ("s" if many else ""), accept_multiple_files=many,
                                 key=f"bm.{prefix}.upload", help=help_)
        uploads = [f for f in (files if isinstance(files, list) else [files]) if f is not None]
        return [partial(parse, f.getvalue(), name=f.name) for f in uploads]
    paths = st.text_area("Path" + (" (one per line)" if many else ""), key=f"bm.{prefix}.path",
                         help="a file under the folders this server may open")
    chosen = [p.strip() for p in paths.splitlines() if p.strip()][: None if many else 1]
    return [partial(_read_path, read, p) for p in chosen]


def _read_path(read: Callable[..., object], path: str) -> object:
    # A typed path is opened only under the server's data roots, like every other typed path.
    return read(check_allowed(path), name=path)


def _content_key(value: object) -> str:
    """A short id of a parsed benchmark file's content (its questions or pairs), for the result cache."""
    return hashlib.blake2b(repr(value).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


m = current_matrix()
key = cached.key_of(m)
standard = evaluate.standard_sets()
st.title("Benchmarks")
st.caption("Numbers follow gensim's evaluate_word_analogies and evaluate_word_pairs, so they can be quoted "
           "next to published ones." + ("" if standard else " Install gensim to get the standard sets by name."))

s1, s2, s3 = st.columns(3)
restrict = int(s1.number_input("Use the first N rows", min_value=1, value=evaluate.RESTRICT_VOCAB, step=10_000,
                               key="bm.restrict", help="gensim's restrict_vocab (300,000 by default)"))
case_insensitive = s2.checkbox("Ignore case", value=True, key="bm.case",
                               help="compare upper-cased words; among case variants the first row wins")
dummy = s3.checkbox("Count unknown words as wrong", value=False, key="bm.dummy",
                    help="gensim's dummy4unknown: out-of-vocabulary questions count as wrong (pairs as 0)")
settings = (key, restrict, case_insensitive, dummy)

analogies_tab, pairs_tab = st.tabs(["Word analogies", "Word-pair similarity"])

with analogies_tab:
    readers = _sources("analogies", many=False)
    method_label = st.radio("Method", ["3CosAdd", "3CosMul"], horizontal=True, key="bm.method",
                            help="3CosAdd is gensim's (most_similar); 3CosMul is Levy & Goldberg's")
    method = "mul" if method_label == "3CosMul" else "add"
    if st.button("Run analogies", key="bm.run_analogies", type="primary", disabled=not readers):
        with shown_errors(stop=False):
            aset = readers[0]()
            if not isinstance(aset, evaluate.AnalogySet):
                raise TypeError(aset)
            questions: evaluate.AnalogySet = aset
            result = longrun.once(
                "analogies", (settings, method, _content_key(aset)),
                lambda progress: evaluate.evaluate_analogies(m, questions, restrict_vocab=restrict,
                                                             case_insensitive=case_insensitive, dummy4unknown=dummy,
                                                             method=method, progress=progress), "Analogies")
            state.BENCH_ANALOGIES.set((settings, result))
    stored = state.BENCH_ANALOGIES.get()
    if stored is not None and stored[0] == settings:
        res: evaluate.AnalogyResult = stored[1]
        st.subheader(res.file)
        a, b, c = st.columns(3)
        a.metric("Accuracy", f"{res.accuracy:.2%}", help="3CosMul" if res.method == "mul" else "3CosAdd")
        b.metric("Correct / evaluated", f"{res.correct:,} / {res.total:,}")
        c.metric("Coverage", f"{res.coverage:.1%}", help=f"{res.skipped:,} of {res.questions:,} questions have a "
                 "word outside the vocabulary" + (" (counted as wrong)" if dummy else " (left out)"))
        sections = pd.DataFrame([{"section": s.section, "accuracy": s.accuracy, "correct": s.correct,
                                  "total": s.total} for s in res.sections])
        left, right = st.columns([3, 2])
        left.altair_chart(charts.accuracy_bars(sections["section"].tolist(), sections["correct"].tolist(),
                                               sections["total"].tolist()), width="stretch")
        right.dataframe(sections, hide_index=True, width="stretch",
                        column_config={"accuracy": st.column_config.NumberColumn(format="percent")})
        with st.expander("Wrong answers"):
            wrong = res.details[~res.details["correct"] & ~res.details["oov"]]
            st.dataframe(wrong, hide_index=True, width="stretch")
        st.download_button("All questions as CSV", res.details.to_csv(index=False), "analogies.csv", "text/csv",
                           key="bm.analogies_csv")

with pairs_tab:
    delimiter = st.selectbox("Field separator", ["tab", "comma", "whitespace"], key="bm.delimiter")
    readers_p = _sources("pairs", many=True, delimiter={"tab": "\t", "comma": ",", "whitespace": None}[delimiter])
    if st.button("Run word pairs", key="bm.run_pairs", type="primary", disabled=not readers_p):
        results: list[evaluate.PairsResult] = []
        for reader in readers_p:
            with shown_errors(stop=False):
                read = reader()
                if not isinstance(read, evaluate.PairSet):
                    raise TypeError(read)
                pset: evaluate.PairSet = read
                results.append(longrun.once(
                    "pairs", (settings, _content_key(pset)),
                    lambda _progress: evaluate.evaluate_pairs(m, pset, restrict_vocab=restrict,  # noqa: B023
                                                              case_insensitive=case_insensitive,
                                                              dummy4unknown=dummy), f"Word pairs: {pset.name}"))
        state.BENCH_PAIRS.set((settings, results))
    stored_p = state.BENCH_PAIRS.get()
    if stored_p is not None and stored_p[0] == settings and stored_p[1]:
        pres: list[evaluate.PairsResult] = stored_p[1]
        table = pd.DataFrame([{"file": p.file, "pearson": p.pearson, "spearman": p.spearman,
                               "oov ratio (%)": p.oov_ratio, "pairs used": p.pairs} for p in pres])
        st.dataframe(table, hide_index=True, width="stretch")
        pick = st.selectbox("Scatter of", [p.file for p in pres], key="bm.pairs_pick")
        chosen = next(p for p in pres if p.file == pick)
        st.altair_chart(charts.pairs_scatter(chosen.table["human"].tolist(), chosen.table["model"].tolist(),
                                             chosen.table["word1"].tolist(), chosen.table["word2"].tolist(),
                                             title=f"Human vs model: {chosen.file}"), width="stretch")
        st.download_button("Pairs with model scores as CSV", chosen.table.to_csv(index=False), "pairs.csv",
                           "text/csv", key="bm.pairs_csv")
