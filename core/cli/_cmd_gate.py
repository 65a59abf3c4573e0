"""``gate``: can this model ship? One verdict from the audit of NEW, its comparison with the last release and
the quantised copy that will ship.

    embedscope gate NEW [--baseline OLD] [--quantized FILE] [--policy gate.toml] [--fail-on fail|warn]
                    [--report report.html] [--junit junit.xml] [--markdown summary.md] [--all-tokens] [--json]

Exit code 0 (ship), 1 (a check reached ``--fail-on``), 2 (an input or the policy could not be read, or an
output path exists).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli._common import EXIT_FAIL, EXIT_OK, add_json, add_source, emit, open_source, progress_bar
from core.errors import OutputExistsError, ParameterError

_MARK = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "n/a": "n/a "}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate", help="release gate: audit + comparison with the last release + quantised copy",
                       description="One verdict for a release: every audit check of NEW, and against --baseline "
                                   "the vocabulary diff, changed rows, drift, Jaccard@k, newly under-trained and "
                                   "special/template tokens and new bad rows; with --quantized, the shipped "
                                   "copy's drift, Jaccard and per-row error. Thresholds: the [gate] section of the "
                                   "audit policy file.")
    add_source(p)
    p.add_argument("--baseline", metavar="OLD", help="the last release (a path, 'demo', or a hub id)")
    p.add_argument("--quantized", metavar="FILE", help="the quantised copy the release will ship (GGUF, int8, ...)")
    p.add_argument("--policy", metavar="FILE", help="TOML thresholds: audit sections and [gate]")
    p.add_argument("--fail-on", choices=["fail", "warn"], default="fail",
                   help="the status that makes the verdict fail and the exit code 1 (default: fail)")
    p.add_argument("--report", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per check)")
    p.add_argument("--markdown", metavar="FILE", help="write a Markdown summary for a pull-request comment")
    p.add_argument("--all-tokens", action="store_true",
                   help="Jaccard@k over every shared token too (default: the 50,000 most frequent)")
    add_json(p)
    p.set_defaults(func=cmd_gate)


def _text(rep: object) -> str:
    from core.gate import GateReport

    assert isinstance(rep, GateReport)
    lines = [f"{rep.new['path']}" + (f" vs baseline {rep.baseline['path']}" if rep.baseline else "")]
    for c in rep.checks:
        value = "—" if c.value is None else f"{c.value:.4g}"
        lines.append(f"  {_MARK[c.status]}  {c.title[:40]:<40} {value:>9}  {c.reason}")
        if c.tokens and c.status in ("warn", "fail"):
            more = f" … (+{len(c.tokens) - 8})" if len(c.tokens) > 8 else ""
            lines.append("        tokens: " + ", ".join(repr(t) for t in c.tokens[:8]) + more)
    lines.extend(f"  note: {n}" for n in rep.notes)
    s = rep.summary()
    lines.append(f"verdict: {rep.verdict.upper()} ({s['pass']} pass, {s['warn']} warn, {s['fail']} fail, "
                 f"{s['n/a']} n/a; --fail-on {rep.fail_on})")
    return "\n".join(lines)


def cmd_gate(args: argparse.Namespace) -> int:
    from core.gate import GateSettings, gate, load_policy
    from core.loaders import load
    from core.report import gate as out

    outputs = [(flag, getattr(args, flag)) for flag in ("report", "junit", "markdown") if getattr(args, flag)]
    for flag, target in outputs:  # refuse before minutes of work, not after
        if Path(target).exists() or Path(target).is_symlink():
            raise OutputExistsError(f"--{flag} {target} exists already; choose a new path (outputs are never "
                                    "overwritten)")
        if not Path(target).resolve().parent.is_dir():
            raise ParameterError(f"--{flag} {target}: the folder {Path(target).parent} does not exist")
    policy, settings = load_policy(args.policy) if args.policy else (None, GateSettings())
    if args.all_tokens:
        settings = GateSettings(tuple(sorted({**dict(settings.values), "all_tokens": True}.items())))
    new = open_source(args)
    # --tensor/--vocab describe NEW; the baseline and the quantised copy open as they are
    baseline = load(args.baseline) if args.baseline else None
    quantized = load(args.quantized) if args.quantized else None
    with progress_bar("gate") as bar:
        rep = gate(new, baseline, quantized=quantized, policy=policy, settings=settings, fail_on=args.fail_on,
                   progress=bar)
    sources = tuple(str(s) for s in (args.source, args.baseline, args.quantized, args.policy,
                                     new.provenance.path) if s)
    renders = {"report": lambda: out.render_html(rep, new, baseline), "junit": lambda: out.junit_xml(rep),
               "markdown": lambda: out.markdown(rep)}
    for flag, target in outputs:
        out.write(rep, target, renders[flag], sources)
    emit(args, rep.to_json(), lambda: _text(rep))
    return EXIT_OK if rep.ships else EXIT_FAIL
