"""``audit``: the health audit as a release gate.

    embedscope audit SOURCE [--policy FILE] [--html report.html] [--fail-on fail|warn] [--json]

Exit code 0 when no check reaches ``--fail-on`` (default ``fail``), 1 when one does, 2 when the matrix or
the policy file cannot be read.
"""

from __future__ import annotations

import argparse
import textwrap

from core.audit import CHECKS, PREMISES, TITLES, AuditReport, Policy, audit
from core.cli._common import EXIT_FAIL, EXIT_OK, add_json, add_source, emit, open_source, progress_bar
from core.report.audit_html import write_html

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "n/a": "n/a "}


def register(sub: argparse._SubParsersAction) -> None:
    premises = "\n".join(textwrap.fill(f"{TITLES[c]} ({c}): {PREMISES[c]}", 100, subsequent_indent="    ")
                         for c in CHECKS)
    p = sub.add_parser("audit", help="health audit: damage, duplicates, under-trained tokens, anisotropy, ...",
                       description="Run every health check and exit 1 when one reaches --fail-on. A check "
                                   "whose premise does not hold for the model's family (from config.json or the "
                                   "file format; [model] family in a policy overrides it) says n/a.",
                       epilog="What each check assumes:\n" + premises,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source(p)
    p.add_argument("--policy", metavar="FILE", help="TOML file of thresholds ([check] setting = value)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report to FILE")
    p.add_argument("--force", action="store_true", help="overwrite an existing --html file")
    p.add_argument("--fail-on", choices=["fail", "warn"], default="fail",
                   help="the status that makes the exit code 1 (default: fail)")
    add_json(p)
    p.set_defaults(func=cmd_audit)


def _text(report: AuditReport, fail_on: str, html_path: str | None) -> str:
    lines = [f"{report.source}: {report.shape[0]:,} rows × {report.shape[1]} dimensions; model family "
             f"{report.family} ({report.family_source})"]
    for c in report.checks:
        value = "—" if c.value is None else f"{c.value:.4g}"
        lines.append(f"  {_MARK[c.status]}  {c.title:<22} {value:>9}  {c.reason}")
        if c.tokens and c.status in ("warn", "fail"):
            shown = ", ".join(repr(t) for t in c.tokens[:8])
            more = f" … (+{len(c.tokens) - 8})" if len(c.tokens) > 8 else ""
            lines.append(f"        tokens: {shown}{more}")
    s = report.summary()
    lines.append(f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail, {s['n/a']} n/a "
                 f"(--fail-on {fail_on}: {'reached' if report.reaches(fail_on) else 'not reached'})")
    if html_path:
        lines.append(f"report written to {html_path}")
    return "\n".join(lines)


def cmd_audit(args: argparse.Namespace) -> int:
    policy = Policy.load(args.policy) if args.policy else Policy()
    m = open_source(args)
    with progress_bar("audit") as bar:
        report = audit(m, policy, source=str(args.source), progress=bar)
    if args.html:
        sources = [s for s in (m.provenance.path, args.source, args.policy) if s]
        write_html(report, args.html, force=args.force, sources=sources)
    emit(args, report.to_json(), lambda: _text(report, args.fail_on, args.html))
    return EXIT_FAIL if report.reaches(args.fail_on) else EXIT_OK
