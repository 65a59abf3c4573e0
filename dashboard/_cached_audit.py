"""The Health page's cache: one audit per (matrix key, policy), shared by every session of the process.

The store itself lives in ``st.cache_resource``; the audit runs outside a cached function so that its
progress bar is drawn live (a cached function would record the bar and replay it on every hit).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from core.audit import AuditReport, Policy, audit, render_html
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn

_MAX_ENTRIES = 8


class _Store:
    """A small LRU of audit reports and their HTML, safe to share between sessions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reports: OrderedDict[tuple[str, Policy], AuditReport] = OrderedDict()
        self.html: dict[tuple[str, Policy], str] = {}

    def get(self, key: tuple[str, Policy]) -> AuditReport | None:
        with self.lock:
            report = self.reports.get(key)
            if report is not None:
                self.reports.move_to_end(key)
            return report

    def put(self, key: tuple[str, Policy], report: AuditReport) -> None:
        with self.lock:
            self.reports[key] = report
            self.reports.move_to_end(key)
            while len(self.reports) > _MAX_ENTRIES:
                old, _ = self.reports.popitem(last=False)
                self.html.pop(old, None)


@st.cache_resource(show_spinner=False)
def _store() -> _Store:
    return _Store()


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
        store.put((key, policy), report)
    return report


def report_html(key: str, policy: Policy, report: AuditReport) -> str:
    """The self-contained HTML report, rendered once per cached audit."""
    store = _store()
    with store.lock:
        text = store.html.get((key, policy))
    if text is None:
        text = render_html(report)
        with store.lock:
            store.html[(key, policy)] = text
    return text
