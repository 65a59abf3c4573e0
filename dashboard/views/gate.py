"""Release check: can this model ship? The new matrix against the last release (and the quantised copy that will
ship), one verdict, every check with its evidence, and the reports to attach to the ticket."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import charts
from core.errors import EmbedscopeError
from core.gate import FAIL_ON, GateReport, GateSettings, gate
from core.matrix import EmbeddingMatrix
from core.report import gate as out
from dashboard import cached, longrun, state
from dashboard.ui import shown_errors

NONE = "—"
_ICON = {"pass": "●", "warn": "▲", "fail": "■", "n/a": "○"}  # shapes, not emoji: every font has them

st.title("Release check")
st.caption("Pick the new matrix and the last release; the check runs every audit check on the new one and "
           "compares it with the baseline: vocabulary, changed rows, drift, neighbourhoods, newly under-trained "
           "and special tokens, new broken rows, and the quantised copy when you give one.")

specs = state.opened()
pre = state.preselected(state.GATE_PRESELECT)
if pre is not None:
    st.session_state.setdefault("gate.new", pre[1])
    st.session_state.setdefault("gate.baseline", pre[0])
if st.session_state.get("gate.new") not in specs:
    st.session_state["gate.new"] = state.current() if state.current() in specs else specs[0]
c1, c2, c3 = st.columns(3)
new_spec = c1.selectbox("New matrix (the candidate)", specs, format_func=lambda s: s.title, key="gate.new")
base_choices: list[state.SourceSpec | str] = [NONE, *specs]
base_spec = c2.selectbox("Baseline (the last release)", base_choices, key="gate.baseline",
                         format_func=lambda s: s if isinstance(s, str) else s.title)
quant_spec = c3.selectbox("Quantised copy that will ship (optional)", base_choices, key="gate.quantized",
                          format_func=lambda s: s if isinstance(s, str) else s.title)
o1, o2 = st.columns(2)
fail_on = o1.radio("Fail on", list(FAIL_ON), horizontal=True, key="gate.fail_on",
                   help="the status that makes the verdict 'fail'")
all_tokens = o2.checkbox("Jaccard over every token (slower on large vocabularies)", key="gate.all_tokens")
if len(specs) < 2:
    st.info("Only one matrix is open: the check audits it alone. Open the last release in the sidebar (or "
            "fine-tune this one) to compare with it.")


def _open(spec: state.SourceSpec | str) -> EmbeddingMatrix | None:
    if isinstance(spec, str):
        return None
    try:
        return cached.matrix(spec)
    except EmbedscopeError as err:
        st.error(f"{spec.title}: {err}")
        st.stop()


if not st.button("Check", type="primary", key="gate.go") and not state.GATE_LAST.is_set():
    st.stop()
opened_new = _open(new_spec)
if opened_new is None:
    st.stop()
new: EmbeddingMatrix = opened_new
baseline = _open(base_spec)
quantized = _open(quant_spec)
settings = GateSettings.from_mapping({"all_tokens": bool(all_tokens)})
key = (cached.key_of(new), cached.key_of(baseline) if baseline is not None else None,
       cached.key_of(quantized) if quantized is not None else None, fail_on, settings)
with shown_errors():
    rep: GateReport = longrun.once("gate", key, lambda progress: gate(new, baseline, quantized=quantized,
                                                                      settings=settings, fail_on=fail_on,
                                                                      progress=progress), "Checking")
state.GATE_LAST.set(key)

s = rep.summary()
text = (f"**Verdict: {rep.verdict.upper()}** — {s['pass']} passed, {s['warn']} warned, {s['fail']} failed, "
        f"{s['n/a']} not applicable (fail on: {rep.fail_on}).")
{"pass": st.success, "warn": st.warning, "fail": st.error}[rep.verdict](text)
for note in rep.notes:
    st.caption(note)

table = pd.DataFrame({
    "": [_ICON[c.status] for c in rep.checks], "check": [c.title for c in rep.checks],
    "id": [c.id for c in rep.checks], "status": [c.status for c in rep.checks],
    "value": [c.value for c in rep.checks], "reason": [c.reason for c in rep.checks],
    "evidence": [", ".join(c.tokens[:12]) for c in rep.checks],
})
st.dataframe(table, hide_index=True, width="stretch")

if rep.comparison is not None and rep.comparison.has_drift and not rep.comparison.identical:
    st.subheader("What moved")
    g1, g2 = st.columns(2)
    assert rep.comparison.drift is not None
    g1.altair_chart(charts.drift_histogram(rep.comparison.drift), width="stretch")
    g2.altair_chart(charts.jaccard_bars(rep.comparison.jaccard, rep.comparison.k), width="stretch")
    st.dataframe(rep.comparison.table(top=30)[["token", "drift", "jaccard", "neighbors_a", "neighbors_b"]],
                 hide_index=True, width="stretch")

st.subheader("Reports")
d1, d2, d3 = st.columns(3)
try:
    d1.download_button("HTML report", out.render_html(rep, new, baseline), file_name="release-check.html",
                       mime="text/html", key="gate.dl.html")
except EmbedscopeError as err:
    d1.error(str(err))
d2.download_button("JUnit XML", out.junit_xml(rep), file_name="release-check.xml", mime="application/xml",
                   key="gate.dl.junit")
d3.download_button("Markdown summary", out.markdown(rep), file_name="release-check.md", mime="text/markdown",
                   key="gate.dl.md")
