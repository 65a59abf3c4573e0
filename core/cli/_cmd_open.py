"""``info``, ``lookup`` and ``stats``: what a matrix is, what a text maps to, and its numbers."""

from __future__ import annotations

import argparse

from core import stats
from core.cli._common import add_json, add_source, emit, open_source
from core.loaders import ROW_NUMBERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="format, tensor, vocabulary size, dim, dtype")
    add_source(p)
    add_json(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("lookup", help="text → tokenizer pieces → ids → vectors")
    add_source(p)
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--special", action="store_true", help="keep special tokens such as [CLS]/[SEP]")
    p.add_argument("--allow-unknown", action="store_true",
                   help="print pieces that map to the unknown token instead of failing")
    add_json(p)
    p.set_defaults(func=cmd_lookup)

    p = sub.add_parser("stats", help="mean, std, min, max, row norms")
    add_source(p)
    add_json(p)
    p.set_defaults(func=cmd_stats)


def cmd_info(args: argparse.Namespace) -> int:
    m = open_source(args)
    p = m.provenance
    payload = {"format": p.format, "path": p.path, "tensor": p.tensor, "vocab_size": len(m), "dim": m.dim,
               "dtype": p.dtype, "has_tokenizer": m.has_tokenizer,
               # "rows" spells it as --vocab does, whatever the loader's wording
               "vocab_source": "rows" if p.vocab_source == ROW_NUMBERS else p.vocab_source,
               "tied": p.tied, "file_bytes": p.file_bytes, "candidates": list(p.candidates),
               "notes": list(p.notes)}
    emit(args, payload, lambda: "\n".join(f"{k:>14}: {v}" for k, v in payload.items()))
    return 0


def cmd_lookup(args: argparse.Namespace) -> int:
    m = open_source(args)
    found = stats.lookup(m, args.text, special=args.special, strict=not args.allow_unknown)

    def text() -> str:
        lines = [f"{args.text!r} → {len(found.pieces)} piece(s)"]
        for pc in found.pieces:
            vec = [] if pc.vector is None else pc.vector.astype(float).tolist()
            head = ", ".join(f"{x:+.4f}" for x in vec[:6])
            lines.append(f"  {pc.token!s:<16} id={pc.id:<7} norm={pc.norm or 0:.4f}  [{head}, ...] "
                         f"({len(vec)} values)")
        return "\n".join(lines)

    emit(args, found.to_json(), text)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    m = open_source(args)
    s = stats.summary(m)
    payload = s.to_json()
    emit(args, payload, lambda: (
        f"shape {s.shape[0]}×{s.shape[1]} ({s.dtype})\nmean {s.mean:+.6f}  std {s.std:.6f}  "
        f"min {s.min:+.4f}  max {s.max:+.4f}\nnorms: min {s.norm_min:.4f}  median {s.norm_median:.4f}  "
        f"max {s.norm_max:.4f}" + (f"\nnon-finite values: {s.nonfinite}" if s.nonfinite else "")))
    return 0
