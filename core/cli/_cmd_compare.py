"""``compare`` and ``quantize``: what moved between two matrices, and what fp16/bf16/int8 would cost."""

from __future__ import annotations

import argparse
from typing import Any

from core import compare as cp
from core.cli._common import add_format, add_json, emit, open_with, progress_bar
from core.matrix import EmbeddingMatrix


def _open(args: argparse.Namespace, side: str) -> EmbeddingMatrix:
    return open_with(args, getattr(args, side), tensor=getattr(args, f"tensor_{side}", None),
                     vocab=getattr(args, f"vocab_{side}", None), limit=getattr(args, f"limit_{side}", None),
                     format_dest=f"format_{side}")


def _add_side(p: argparse.ArgumentParser, side: str, what: str) -> None:
    p.add_argument(side, metavar=side.upper(), help=f"{what}: a model folder or file, word2vec/GloVe, .npy, "
                   "Projector vectors.tsv, or a hub id")
    p.add_argument(f"--tensor-{side}", help=f"tensor of {side.upper()} to read (default: the input embedding)")
    p.add_argument(f"--vocab-{side}", help=f"vocabulary file or tokenizer folder for {side.upper()}")
    p.add_argument(f"--limit-{side}", type=int, metavar="N", help=f"read only the first N rows of {side.upper()} "
                   "(word2vec/GloVe)")
    add_format(p, f"--format-{side}", f"format_{side}", side.upper())


def _add_search(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", choices=cp.SEARCHES, default="auto",
                   help="neighbour search for Jaccard@k: exact, approximate (NN-descent; the output says so), or "
                        "auto: exact unless the vocabulary is too large for it on the CPU (default: auto)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="what moved between A and B: aligned drift, Jaccard@k of neighbourhoods, "
                                       "the moved-most tokens")
    _add_side(p, "a", "the matrix before")
    _add_side(p, "b", "the matrix after")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None,
                   help="rotate A onto B by orthogonal Procrustes (default: yes, unless B is a fine-tune of A "
                        "per its run.json, or the dimensions differ)")
    p.add_argument("--align-on", type=int, metavar="N", help="fit the rotation on the first N shared tokens "
                   "(default: all shared tokens)")
    p.add_argument("-k", type=int, default=10, help="neighbours per token for Jaccard@k (default: 10)")
    p.add_argument("--top", type=int, default=50, help="moved-most tokens listed (default: 50)")
    p.add_argument("--sort", choices=cp.SORTS, default="drift", help="order of the moved-most list "
                   "(default: drift, largest first)")
    p.add_argument("--limit", type=int, metavar="N", help="compare only the first N shared tokens (large "
                   "vocabularies)")
    _add_search(p)
    p.add_argument("--corpus", metavar="FILE", help="list only tokens that occur in this corpus file "
                   "(tokenised as fine-tuning does)")
    p.add_argument("--analogies", nargs="+", default=[], metavar="FILE",
                   help="analogy files (questions-words.txt format) for benchmark deltas")
    p.add_argument("--pairs", nargs="+", default=[], metavar="FILE",
                   help="word-pair files (WordSim353/SimLex format) for benchmark deltas")
    p.add_argument("--allow-same", action="store_true", help="accepted for old scripts: a matrix compared with "
                   "itself is always allowed (zero drift, Jaccard 1.0, a note that A and B are identical)")
    add_json(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("quantize", help="drift and Jaccard@k of fp16, bf16 and int8 copies of a matrix; "
                                        "optionally write one")
    p.add_argument("a", metavar="SOURCE", help="the matrix: a model folder or file, word2vec/GloVe, .npy, ...")
    p.add_argument("--tensor", dest="tensor_a", help="tensor to read (default: the input embedding)")
    p.add_argument("--vocab", dest="vocab_a", help="vocabulary file or tokenizer folder")
    add_format(p, "--input-format", "format_a")  # --format names what --out is written in
    p.add_argument("--formats", nargs="+", choices=cp.QUANT_FORMATS, default=list(cp.QUANT_FORMATS),
                   help="formats to measure (default: all)")
    p.add_argument("-k", type=int, default=10, help="neighbours per token for Jaccard@k (default: 10)")
    p.add_argument("--limit", type=int, metavar="N", help="measure only the first N tokens (large vocabularies)")
    _add_search(p)
    p.add_argument("--out", metavar="DIR", help="write the copy in --format as a new safetensors folder")
    p.add_argument("--format", dest="out_format", choices=cp.QUANT_FORMATS, help="format written to --out")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_json(p)
    p.set_defaults(func=cmd_quantize)


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "—" if v is None else format(v, spec)


def cmd_compare(args: argparse.Namespace) -> int:
    a, b = _open(args, "a"), _open(args, "b")
    with progress_bar("compare") as bar:
        c = cp.compare(a, b, k=args.k, align=args.align, align_on=args.align_on, limit=args.limit,
                       allow_same=args.allow_same, search=args.search, progress=bar)
    rows = cp.corpus_rows(a, args.corpus) if args.corpus else None
    payload: dict[str, Any] = c.to_json(top=args.top)
    payload["moved"] = c.moved(args.top, args.sort, rows_a=rows)
    if args.corpus:
        payload["corpus"] = {"file": args.corpus, "tokens": int(rows.size) if rows is not None else 0}
    deltas: list[cp.BenchmarkDelta] = []
    if args.analogies or args.pairs:
        with progress_bar("benchmarks") as bar:
            deltas = cp.benchmark_deltas(a, b, args.analogies, args.pairs, progress=bar)
        payload["benchmarks"] = [d.to_json() for d in deltas]
    s = c.summary()

    def text() -> str:
        lines = [f"A: {c.label_a} ({len(a):,}×{a.dim})", f"B: {c.label_b} ({len(b):,}×{b.dim})",
                 f"vocabulary: {c.shared:,} shared, {c.only_a:,} only in A, {c.only_b:,} only in B"
                 + (f"; {c.compared:,} compared" if c.compared != c.shared else ""),
                 f"alignment: {c.alignment}",
                 f"drift: mean {_fmt(s.mean_drift)}  median {_fmt(s.median_drift)}  p90 {_fmt(s.p90_drift)}  "
                 f"p99 {_fmt(s.p99_drift)}  max {_fmt(s.max_drift)}",
                 f"Jaccard@{c.k}: median {s.median_jaccard:.3f}  mean {s.mean_jaccard:.3f}; neighbourhood changed "
                 f"for {s.changed_share:.1%} of tokens",
                 f"norms: mean {s.mean_norm_a:.4f} → {s.mean_norm_b:.4f}", *(f"note: {n}" for n in c.notes), "",
                 f"{'token':<20} {'drift':>9} {'jaccard':>8}  neighbours in A | in B"]
        for r in payload["moved"]:
            lines.append(f"{r['token'][:20]:<20} {_fmt(r['drift']):>9} {r['jaccard']:>8.3f}  "
                         f"{', '.join(r['neighbors_a'][:5])} | {', '.join(r['neighbors_b'][:5])}")
        for d in deltas:
            lines.append(f"{d.benchmark}: {d.metric} {d.a:.4f} → {d.b:.4f} ({d.delta:+.4f})")
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    m = _open(args, "a")
    if bool(args.out) != bool(args.out_format):
        from core.errors import ParameterError

        raise ParameterError("--out and --format go together: --format names the format written to --out")
    with progress_bar("quantize") as bar:
        report = cp.quantization_impact(m, args.formats, k=args.k, limit=args.limit, search=args.search,
                                        progress=bar)
    payload = report.to_json()
    written = None
    if args.out:
        written = cp.export_quantized(m, args.out_format, args.out, force=args.force)
        payload["written"] = written.to_json()

    def text() -> str:
        lines = [f"{'format':<7} {'MiB':>9} {'saved':>6} {'mean drift':>11} {'max drift':>10} "
                 f"{'median J@' + str(report.k):>11} {'changed':>8}"]
        for imp in report.impacts:
            j = imp.to_json()
            lines.append(f"{imp.format:<7} {imp.bytes / 2**20:>9.1f} {j['saved']:>6.0%} "
                         f"{_fmt(j['mean_drift'], '.2e'):>11} {_fmt(j['max_drift'], '.2e'):>10} "
                         f"{j['median_jaccard']:>11.3f} {j['changed_share']:>8.1%}"
                         + (f"  ({imp.overflow} rows overflow)" if imp.overflow else ""))
        if written is not None:
            lines.append(f"wrote {args.out_format} to {written.target}")
            lines.extend(f"note: {n}" for n in written.notes)
        return "\n".join(lines)

    emit(args, payload, text)
    return 0
