"""The audit as one self-contained HTML page: charts as SVG images inside it, no scripts, no links."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.report._render import STATUS_COLORS, chart_data_uri

if TYPE_CHECKING:

    from core.audit.result import AuditReport

__all__ = ["render_html", "write_html"]

_COLORS = STATUS_COLORS
_ICONS = {"pass": "●", "warn": "▲", "fail": "■", "n/a": "○"}


def _table_html(df: pd.DataFrame, limit: int = 100) -> str:
    shown = df.head(limit)
    more = f"<p class=more>… and {len(df) - limit} more rows (all of them are in the JSON report)</p>" \
        if len(df) > limit else ""
    return shown.to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}", border=0) + more


def render_html(report: AuditReport) -> str:
    """The report as one self-contained HTML page: charts are SVG images inside it, no scripts, no links."""
    from core import charts

    e = html.escape
    s = report.summary()
    rows = "".join(
        f"<tr><td><span class=badge style='background:{_COLORS[c.status]}'>{_ICONS[c.status]} {e(c.status)}</span>"
        f"</td><td>{e(c.title)}</td><td>{'' if c.value is None else f'{c.value:.4g}'}</td><td>{e(c.unit)}</td>"
        f"<td>{e(c.reason)}</td></tr>" for c in report.checks)
    sections = []
    for c in report.checks:
        parts = [f"<h2 id='{e(c.id)}'><span class=badge style='background:{_COLORS[c.status]}'>"
                 f"{_ICONS[c.status]} {e(c.status)}</span> {e(c.title)}</h2>", f"<p>{e(c.reason)}</p>",
                 f"<p class=thr>premise: {e(c.premise)}</p>",
                 "<p class=thr>thresholds: " + e(", ".join(f"{k} = {v}" for k, v in c.threshold.items())) + "</p>"]
        chart = charts.audit_chart(c)
        if chart is not None:
            chart = chart.properties(width=760, height=240)
            parts.append(f"<img alt='{e(c.title)} chart' src='{chart_data_uri(chart)}'>")
        if c.tokens:
            shown = ", ".join(e(repr(t)) for t in c.tokens[:100])
            more = f" … and {len(c.tokens) - 100} more" if len(c.tokens) > 100 else ""
            parts.append(f"<p><b>{len(c.tokens)} token(s):</b> <code>{shown}</code>{more}</p>")
        if c.dims:
            parts.append(f"<p><b>dimensions:</b> {e(', '.join(map(str, c.dims)))}</p>")
        for key in ("rows", "groups", "facts"):
            if isinstance(c.data.get(key), pd.DataFrame) and len(c.data[key]):
                parts.append(_table_html(c.data[key]))
        if c.id == "undertrained" and len(report.undertrained):
            parts.append(f"<p>Candidates ({e(report.method)}):</p>" + _table_html(report.undertrained))
        sections.append("<section>" + "".join(parts) + "</section>")
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Embedscope health audit: {e(report.source)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ padding: 3px 8px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top; }} .badge {{ color: white; border-radius: 4px; padding: 1px 7px;
font-size: 0.85em; white-space: nowrap; }} .thr, .more {{ color: #666; font-size: 0.85em; }}
img {{ max-width: 100%; }} code {{ word-break: break-all; }} section {{ margin-top: 2em; }}
</style></head><body>
<h1>Health audit</h1>
<p><b>{e(report.source)}</b> — {report.shape[0]:,} rows × {report.shape[1]} dimensions
· policy: {e(report.policy.source)} · {generated} · {report.seconds:.1f} s</p>
<p>{s['pass']} pass · {s['warn']} warn · {s['fail']} fail · {s['n/a']} n/a
· model family: {e(report.family)} ({e(report.family_source)})</p>
<table><tr><th>status</th><th>check</th><th>value</th><th>unit</th><th>why</th></tr>{rows}</table>
{''.join(sections)}
</body></html>
"""


def write_html(report: AuditReport, target: str | os.PathLike[str], force: bool = False,
               sources: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Write the self-contained HTML report atomically to a new path.

    Raises:
        OutputExistsError: ``target`` exists and ``force`` is False.
        ParameterError: ``target`` is one of the ``sources``.
    """
    from core._io import atomic_file

    text = render_html(report)
    with atomic_file(target, force=force, sources=sources) as tmp:
        tmp.write_text(text, encoding="utf-8")
        # A report is meant to be shared: the usual file mode, not the private one of a temp file.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
    return Path(target)

