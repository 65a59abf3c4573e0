"""The release gate's outputs for the places people look: an HTML report a product manager attaches to the
ticket (self-contained: styles and charts inline, no network to view it, prints on A4), JUnit XML for CI
systems (one test case per check), and a Markdown summary for a pull-request comment.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np

from core.errors import EmbedscopeError
from core.gate import GateCheck, GateReport
from core.report._render import STATUS_COLORS, chart_data_uri

_COLORS = STATUS_COLORS
_VERDICT = {"pass": "Ship: every check passed", "warn": "Ship, with warnings to read",
            "fail": "Do not ship: a check failed"}


def _value(c: GateCheck) -> str:
    from core.numfmt import short

    return "—" if c.value is None else short(float(c.value))


def _projection_svg(rep: GateReport, new: Any, baseline: Any) -> str:
    """A joint projection of the most moved tokens (PCA of both spaces), or "" when there is none to draw."""
    if rep.comparison is None or new is None or baseline is None or not rep.comparison.has_drift \
            or rep.comparison.identical:
        return ""
    from core.charts import joint_projection_chart
    from core.compare import joint_projection

    try:
        jp = joint_projection(rep.comparison, baseline, new, sample=300, top_moved=12)
    except (EmbedscopeError, ValueError, np.linalg.LinAlgError) as err:  # e.g. NaN rows: no PCA to draw
        return f"<p>No projection: {html.escape(str(err))}</p>"
    uri = chart_data_uri(joint_projection_chart(jp.frame, axis_titles=jp.axis_titles,
                                                title="Most moved tokens: baseline → new (one PCA of both)"))
    return f'<img alt="joint projection of the most moved tokens" src="{uri}">'


def _provenance_rows(label: str, p: dict[str, Any] | None) -> str:
    if p is None:
        return ""
    cells = "".join(f"<td>{html.escape(str(p.get(k, '')))}</td>"
                    for k in ("path", "format", "dtype", "rows", "dim", "file_bytes", "fingerprint"))
    return f"<tr><th>{label}</th>{cells}</tr>"


def render_html(rep: GateReport, new: Any = None, baseline: Any = None) -> str:
    """The report as one HTML document: the verdict first, then every check with its evidence, the joint
    projection of the most moved tokens (when ``new`` and ``baseline`` are given), and the provenance."""
    rows = []
    for c in rep.checks:
        tokens = ", ".join(html.escape(t) for t in c.tokens[:30]) + (" …" if len(c.tokens) > 30 else "")
        thr = ", ".join(f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in c.threshold.items())
        rows.append(
            f'<tr class="{c.status.replace("/", "")}"><td><span class="badge" style="background:{_COLORS[c.status]}">'
            f"{c.status}</span></td><td><b>{html.escape(c.title)}</b><br><code>{html.escape(c.id)}</code></td>"
            f"<td>{_value(c)}</td><td>{html.escape(c.reason)}<div class='tok'>{tokens}</div></td>"
            f"<td class='thr'>{thr}</td></tr>")
    chart = _projection_svg(rep, new, baseline)
    s = rep.summary()
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in rep.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Embedscope release gate: {rep.verdict}</title>
<style>
@page {{ size: A4; margin: 14mm; }}
body {{ font: 13px/1.45 system-ui, sans-serif; color: #222; max-width: 190mm; margin: 0 auto; }}
.verdict {{ padding: 12px 16px; border-radius: 6px; color: #fff; background: {_COLORS[rep.verdict]}; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ddd; padding: 4px 6px;
vertical-align: top; text-align: left; }} tr {{ page-break-inside: avoid; }}
.badge {{ color: #fff; padding: 1px 6px; border-radius: 3px; font-size: 11px; }}
.tok {{ color: #555; font-family: monospace; font-size: 11px; word-break: break-all; }}
.thr {{ font-size: 11px; color: #555; }} img {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Release gate</h1>
<div class="verdict" id="verdict"><b>{html.escape(_VERDICT[rep.verdict])}</b> — verdict <code>{rep.verdict}</code>
(fail on: {rep.fail_on}); {s["pass"]} passed, {s["warn"]} warned, {s["fail"]} failed, {s["n/a"]} not applicable.</div>
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Checks</h2>
<table id="checks"><tr><th>status</th><th>check</th><th>value</th><th>evidence</th><th>thresholds</th></tr>
{"".join(rows)}</table>
{f"<h2>Most moved tokens</h2><figure>{chart}</figure>" if chart else ""}
<h2>Files</h2>
<table id="provenance"><tr><th></th><th>path</th><th>format</th><th>dtype</th><th>rows</th><th>dim</th><th>bytes</th>
<th>fingerprint</th></tr>{_provenance_rows("new", rep.new)}{_provenance_rows("baseline", rep.baseline)}
{_provenance_rows("quantised copy", rep.quantized)}</table>
<p style="color:#777">Embedscope gate, {rep.seconds:.1f} s.</p>
</body></html>
"""


def junit_xml(rep: GateReport) -> str:
    """JUnit XML: one ``testcase`` per check; fail → ``failure``, n/a → ``skipped``, warn → passes with the
    warning in ``system-out`` (CI shows it without failing the build)."""
    s = rep.summary()
    suite = ET.Element("testsuite", name="embedscope.gate", tests=str(len(rep.checks)), failures=str(s["fail"]),
                       errors="0", skipped=str(s["n/a"]), time=f"{rep.seconds:.3f}")
    for c in rep.checks:
        case = ET.SubElement(suite, "testcase", classname=f"embedscope.gate.{rep.new.get('format', 'matrix')}",
                             name=c.id, time="0")
        detail = f"{c.reason}\nvalue: {_value(c)}\nthresholds: {c.threshold}\ntokens: {', '.join(c.tokens[:50])}"
        if c.status == "fail" or (c.status == "warn" and rep.fail_on == "warn"):
            ET.SubElement(case, "failure", message=c.reason, type=c.status).text = detail
        elif c.status == "n/a":
            ET.SubElement(case, "skipped", message=c.reason)
        elif c.status == "warn":
            ET.SubElement(case, "system-out").text = "WARN: " + detail
    root = ET.Element("testsuites", name="embedscope gate", tests=suite.get("tests", "0"),
                      failures=suite.get("failures", "0"))
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rep: GateReport, top: int = 10) -> str:
    """A short summary for a pull-request comment: verdict, the checks that did not pass, the most moved tokens."""
    s = rep.summary()
    icon = {"pass": "✅", "warn": "⚠️", "fail": "❌"}[rep.verdict]
    lines = [f"### {icon} Embedscope release gate: **{rep.verdict}**", "",
             f"{s['pass']} passed · {s['warn']} warned · {s['fail']} failed · {s['n/a']} n/a — "
             f"new `{_md(str(rep.new.get('path')))}`"
             + (f" vs baseline `{_md(str(rep.baseline.get('path')))}`" if rep.baseline else ""), ""]
    bad = [c for c in rep.checks if c.status in ("warn", "fail")]
    if bad:
        lines += ["| status | check | value | evidence |", "|---|---|---|---|"]
        lines += [f"| {c.status} | {_md(c.title)} | {_value(c)} | {_md(c.reason)}"
                  + (f" ({_md(', '.join(c.tokens[:5]))})" if c.tokens else "") + " |" for c in bad]
    else:
        lines.append("Every check passed.")
    if rep.comparison is not None:
        moved = [m for m in rep.comparison.moved(top) if (m["drift"] or 0.0) > 0.0 or m["jaccard"] < 1.0]
        if moved:
            lines += ["", "**Most moved tokens:** " + ", ".join(
                f"`{_md(m['token'])}`" + (f" ({m['drift']:.3f})" if m["drift"] is not None else "") for m in moved)]
    return "\n".join(lines) + "\n"


def write(rep: GateReport, target: str | os.PathLike[str], render: Callable[[], str],
          sources: tuple[str, ...] = ()) -> None:
    """Write one output atomically; a target that exists is refused, never overwritten."""
    from core._io import atomic_file

    with atomic_file(target, force=False, sources=sources) as tmp:
        tmp.write_text(render(), encoding="utf-8")
