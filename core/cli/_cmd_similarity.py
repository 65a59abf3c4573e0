"""``neighbors``, ``analogy``, ``similarity``, ``doesnt-match`` and ``evaluate``: what sits close to what."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core import evaluate, search
from core.cli._common import add_json, add_source, emit, open_source, progress_bar
from core.errors import ParameterError


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    p.add_argument("--hide-special", action="store_true", help="leave out special tokens ([CLS], <s>, ...)")
    p.add_argument("--hide-subwords", action="store_true", help="leave out word pieces such as ##ing")
    p.add_argument("--hide-numbers", action="store_true", help="leave out numbers")
    p.add_argument("--first", type=int, metavar="N",
                   help="search only the first N rows (the frequency order of word2vec files)")


def _filters(args: argparse.Namespace) -> search.Filters:
    return search.Filters(hide_special=args.hide_special, hide_subwords=args.hide_subwords,
                              hide_numbers=args.hide_numbers, first_n=args.first)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("neighbors", aliases=["neighbours"],
                       help="nearest tokens to a token, a word, or a formula like 'king - man + woman'")
    add_source(p)
    p.add_argument("query", nargs="+", metavar="QUERY",
                   help="a token, a word the tokenizer splits (averaged), or a formula (quote it)")
    _add_filters(p)
    p.add_argument("--metric", choices=search.METRICS, default="cosine")
    add_json(p)
    p.set_defaults(func=cmd_neighbors)

    p = sub.add_parser("analogy", help="solve 'king - man + woman' by 3CosAdd (add) or 3CosMul (mul)")
    add_source(p)
    p.add_argument("query", nargs="+", metavar="FORMULA", help="e.g. \"king - man + woman\"")
    _add_filters(p)
    p.add_argument("--method", choices=search.METHODS, default="add",
                   help="add = 3CosAdd (gensim most_similar), mul = 3CosMul (most_similar_cosmul)")
    add_json(p)
    p.set_defaults(func=cmd_analogy)

    p = sub.add_parser("similarity", help="cosine similarity between every pair of a few words or texts")
    add_source(p)
    p.add_argument("words", nargs="+", metavar="WORD", help="two or more tokens or texts")
    p.add_argument("--cluster", action="store_true", help="order the words by hierarchical clustering")
    add_json(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("doesnt-match", help="which word of a list doesn't belong (furthest from the mean)")
    add_source(p)
    p.add_argument("words", nargs="+", metavar="WORD")
    add_json(p)
    p.set_defaults(func=cmd_doesnt_match)

    p = sub.add_parser("evaluate", help="word-analogy accuracy and word-pair correlations (gensim's numbers)")
    add_source(p)
    names = ", ".join(evaluate.STANDARD_SETS)
    p.add_argument("--analogies", metavar="FILE",
                   help=f"questions-words.txt-format file, or a standard set name ({names})")
    p.add_argument("--pairs", metavar="FILE", nargs="+", action="extend", default=[],
                   help="WordSim353/SimLex-format files (word1<TAB>word2<TAB>score) or standard set names")
    p.add_argument("--restrict-vocab", type=int, default=evaluate.RESTRICT_VOCAB, metavar="N",
                   help="use only the first N rows (default 300000, as gensim)")
    p.add_argument("--case-sensitive", action="store_true", help="match words with their case (gensim: "
                   "case_insensitive=False)")
    p.add_argument("--dummy4unknown", action="store_true",
                   help="count out-of-vocabulary questions/pairs as wrong/0 instead of skipping them")
    p.add_argument("--method", choices=search.METHODS, default="add", help="analogy method")
    p.add_argument("--delimiter", default="\t", help="field separator of pair files (default: tab)")
    add_json(p)
    p.set_defaults(func=cmd_evaluate)


def _query(args: argparse.Namespace) -> str:
    return " ".join(args.query)


def _notes(notes: list[str]) -> list[str]:
    return [f"  ({n})" for n in notes]


def cmd_neighbors(args: argparse.Namespace) -> int:
    m = open_source(args)
    res = search.neighbors(m, _query(args), k=args.k, metric=args.metric, filters=_filters(args))
    payload = res.to_json()

    def text() -> str:
        order = "largest" if res.higher_is_better else "smallest"
        lines = [f"{res.query.text!r}: {len(res.neighbors)} nearest by {res.metric} ({order} first)",
                 *_notes(res.query.notes())]
        lines += [f"{i:>4}  {n.token:<24} {n.id:>8}  {n.score:+.4f}" for i, n in enumerate(res.neighbors, 1)]
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def cmd_analogy(args: argparse.Namespace) -> int:
    m = open_source(args)
    res = search.analogy(m, _query(args), k=args.k, method=args.method, filters=_filters(args))
    payload = res.to_analogy_json()

    def text() -> str:
        name = "3CosAdd" if args.method == "add" else "3CosMul"
        lines = [f"{res.query.text!r} by {name}:", *_notes(res.query.notes())]
        lines += [f"{i:>4}  {n.token:<24} {n.score:+.4f}" for i, n in enumerate(res.neighbors, 1)]
        return "\n".join(lines)

    emit(args, payload, text)
    return 0


def _warn_missing(missing: list[Any]) -> None:
    for err in missing:
        sys.stderr.write(f"embedscope: warning: {err}\n")


def cmd_similarity(args: argparse.Namespace) -> int:
    m = open_source(args)
    table = search.similarity_matrix(m, args.words, cluster=args.cluster)
    if not table.labels:
        raise table.missing[0]
    _warn_missing(table.missing)
    payload = table.to_json()

    def text() -> str:
        width = max(8, *(len(s) for s in table.labels))
        head = " " * (width + 2) + " ".join(f"{s[:8]:>8}" for s in table.labels)
        rows = [f"{lab:<{width}}  " + " ".join(f"{v:>8.4f}" for v in row)
                for lab, row in zip(table.labels, table.matrix, strict=True)]
        notes = [f"  ({t.describe()})" for t in table.terms if not t.single]
        return "\n".join([head, *rows, *notes])

    emit(args, payload, text)
    return 0


def cmd_doesnt_match(args: argparse.Namespace) -> int:
    m = open_source(args)
    res = search.doesnt_match(m, args.words)
    _warn_missing(res.missing)
    payload = res.to_json()
    emit(args, payload, lambda: "\n".join(
        [f"doesn't belong: {res.odd}", "cosine to the mean of all:",
         *(f"  {w:<24} {s:+.4f}" for w, s in res.ranking)]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    analogies, pairs = args.analogies, list(args.pairs)
    if not analogies and not pairs:
        sets = evaluate.standard_sets()
        if not sets:
            raise ParameterError("give --analogies FILE and/or --pairs FILE (the standard sets are offered by "
                                 "name only when gensim is installed)")
        analogies = next((n for n, kind in evaluate.STANDARD_SETS.items() if kind == "analogies" and n in sets),
                         None)
        pairs = [n for n, kind in evaluate.STANDARD_SETS.items() if kind == "pairs" and n in sets]
    # Read every file before the long work, so a bad path or line fails at once.
    delimiter = None if args.delimiter in ("", "whitespace", "None") else args.delimiter
    aset = (evaluate.read_analogies(evaluate.resolve_benchmark(analogies), name=analogies) if analogies
            else None)
    psets = [evaluate.read_pairs(evaluate.resolve_benchmark(p), delimiter=delimiter, name=p) for p in pairs]
    m = open_source(args)
    payload: dict[str, Any] = {"analogies": None, "pairs": []}
    res = None
    if aset is not None:
        with progress_bar("analogies") as bar:
            res = evaluate.evaluate_analogies(m, aset, restrict_vocab=args.restrict_vocab,
                                              case_insensitive=not args.case_sensitive,
                                              dummy4unknown=args.dummy4unknown, method=args.method, progress=bar)
        payload["analogies"] = res.to_json()
    pres = [evaluate.evaluate_pairs(m, ps, restrict_vocab=args.restrict_vocab,
                                    case_insensitive=not args.case_sensitive, dummy4unknown=args.dummy4unknown)
            for ps in psets]
    payload["pairs"] = [p.to_json() for p in pres]

    def text() -> str:
        lines = []
        if res is not None:
            lines.append(f"analogies ({res.file}): accuracy {res.accuracy:.2%} ({res.correct}/{res.total}), "
                         f"coverage {res.coverage:.1%} of {res.questions} questions")
            lines += [f"  {s.section:<32} {s.accuracy:>7.2%}  ({s.correct}/{s.total})" for s in res.sections]
        for p in pres:
            lines.append(f"pairs ({p.file}): Pearson {p.pearson:.4f}  Spearman {p.spearman:.4f}  "
                         f"OOV {p.oov_ratio:.1f}% ({p.pairs} pairs used)")
        return "\n".join(lines)

    emit(args, payload, text)
    return 0
