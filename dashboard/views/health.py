"""Health: every audit check as a traffic light, each with its chart and the tokens that prove it; the report."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core import charts
from core.audit import AuditReport, Check, Policy, audit
from core.jsonsafe import json_safe
from core.report.audit_html import render_html
from dashboard import cached, longrun, state
from dashboard.ui import current_matrix, full_value, metric_value, shown_errors

_COLOR = {"pass": "green", "warn": "orange", "fail": "red", "n/a": "gray"}
_ICON = {"pass": ":material/check_circle:", "warn": ":material/warning:", "fail": ":material/cancel:",
         "n/a": ":material/remove_circle_outline:"}

m = current_matrix()
key = cached.key_of(m)
st.title("Health")
st.caption(f"{m.shape[0]:,} tokens × {m.dim} dimensions · is anything wrong with this matrix? Each check says "
           "pass, warn or fail and shows the tokens behind it.")

with st.expander("Policy (thresholds)", expanded=False, icon=":material/tune:"):
    upload = st.file_uploader("Policy file (TOML)", type=["toml"], key="health.policy",
                              help="[check] setting = value, e.g. [duplicates] cosine = 0.9995")
    policy = Policy()
    if upload is not None:
        with shown_errors():
            policy = Policy.from_toml(upload.getvalue().decode("utf-8", "replace"), upload.name)
    st.code(policy.to_toml(), language="toml")

with shown_errors():
    report: AuditReport = longrun.once("audit", (key, policy),
                                       lambda progress: audit(m, policy, source=state.current().title,
                                                              progress=progress), "Auditing")

s = report.summary()
st.caption(f"Model family: **{report.family}** ({report.family_source}); it decides which checks apply. Set it "
           "with `[model] family` in a policy file.")
st.subheader(f"{s['pass']} pass · {s['warn']} warn · {s['fail']} fail" + (f" · {s['n/a']} n/a" if s["n/a"] else ""))
cols = st.columns(len(report.checks))
for col, c in zip(cols, report.checks, strict=True):
    with col:
        st.badge(c.status, icon=_ICON[c.status], color=_COLOR[c.status])  # type: ignore[arg-type]
        st.caption(c.title, help=c.premise)


def _details(c: Check, report: AuditReport) -> None:
    st.write(c.reason)
    st.caption(f"Premise: {c.premise}")
    a, b = st.columns([1, 3])
    a.metric(c.unit, metric_value(c.value), help=full_value(c.value))
    b.caption("thresholds: " + ", ".join(f"{k} = {v}" for k, v in c.threshold.items()))
    chart = charts.audit_chart(c)
    if chart is not None:
        st.altair_chart(chart, width="stretch")
    if c.id == "undertrained" and len(report.undertrained):
        st.caption(f"Candidates: {report.method}")
        st.altair_chart(charts.candidate_scores(report.undertrained), width="stretch")
        st.dataframe(report.undertrained, hide_index=True, width="stretch", key="health.candidates")
    for name in ("rows", "groups", "outliers", "facts"):
        table = c.data.get(name)
        if isinstance(table, pd.DataFrame) and len(table):
            st.dataframe(table, hide_index=True, width="stretch", key=f"health.{c.id}.{name}")
    if c.dims:
        st.write("Dimensions: " + ", ".join(map(str, c.dims)))
    if c.tokens and c.id not in ("numerical", "duplicates", "norm_outliers", "undertrained", "unreachable",
                                 "partial_utf8", "scripts"):  # these list their tokens in their own table
        # A check may name tokens that have no row (no id); list ids only where every token has one.
        table = pd.DataFrame({"token": c.tokens, "id": c.ids} if len(c.ids) == len(c.tokens) else {"token": c.tokens})
        st.dataframe(table, hide_index=True, width="stretch", key=f"health.{c.id}.tokens")


for c in report.checks:
    label = f"{c.title} — {c.status}" + (f" ({len(c.tokens)} tokens)" if c.tokens else "")
    with st.expander(label, expanded=c.status in ("warn", "fail"), icon=_ICON[c.status]):
        _details(c, report)

st.divider()
d1, d2, _ = st.columns([1, 1, 2])
d1.download_button("Report (HTML)", lambda: longrun.kept("audit-html", (key, policy), lambda: render_html(report)),
                   "embedscope-health.html", "text/html", key="health.html", icon=":material/download:")
d2.download_button("Report (JSON)", json.dumps(json_safe(report.to_json()), ensure_ascii=False, indent=1),
                   "embedscope-health.json", "application/json", key="health.json", icon=":material/download:")
st.caption(f"Audited in {report.seconds:.1f} s · policy: {report.policy.source}")
