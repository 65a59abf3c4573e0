"""The Health page's cache: one audit per (matrix key, policy), shared by every session of the process.

The store itself lives in ``st.cache_resource``; the audit runs outside a cached function so that its
progress bar is drawn live (a cached function would record the bar and replay it on every hit).
"""

from __future__ import annotations

import streamlit as st

from core.audit import AuditReport, Policy, audit
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn
from core.report.audit_html import render_html
from dashboard.cached import ResultStore

_MAX_ENTRIES = 8


_Key = tuple[str, Policy]


@st.cache_resource(show_spinner=False)
def _store() -> ResultStore[_Key, AuditReport]:
    return ResultStore(_MAX_ENTRIES)


@st.cache_resource(show_spinner=False)
def _html() -> dict[_Key, str]:
    return {}


def cached_report(key: str, policy: Policy) -> AuditReport | None:
    """The audit of the matrix with cache id ``key`` under ``policy``, when it has been run."""
    return _store().get((key, policy))


def audit_report(m: EmbeddingMatrix, key: str, policy: Policy, source: str,
                 progress: ProgressFn | None = None) -> AuditReport:
    """The audit of ``m`` under ``policy``: from the cache, or run now (reporting progress) and kept."""
    store = _store()
    report = store.get((key, policy))
    if report is None:
        report = audit(m, policy, source=source, progress=progress)
        for old in store.put((key, policy), report):
            _html().pop(old, None)
    return report


def report_html(key: str, policy: Policy, report: AuditReport) -> str:
    """The self-contained HTML report, rendered once per cached audit."""
    html = _html()
    text = html.get((key, policy))
    if text is None:
        text = html[(key, policy)] = render_html(report)
    return text
