"""``finetune``: domain skip-gram or supervised fine-tuning of a matrix into a new run folder."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Any

from core.cli._common import add_json, add_source, emit, open_source, progress_bar

if TYPE_CHECKING:
    from core.finetune.runs import Run

RUN_FILE = "run.json"  # core.finetune.RUN_FILE, without importing torch to build the parser

_EXCLUDED = {"text_column", "watch"}  # given their own flags below


def _settings() -> list[tuple[str, type, Any, str, tuple[str, ...]]]:
    """(name, type, example default, help, objectives) of every setting of both configs, once each."""
    from core.finetune import ClassifyConfig, SGNSConfig

    seen: dict[str, tuple[str, type, Any, str, tuple[str, ...]]] = {}
    for cls in (SGNSConfig, ClassifyConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in _EXCLUDED:
                continue
            tp = hints[f.name]
            if isinstance(tp, types.UnionType):
                tp = next(a for a in typing.get_args(tp) if a is not type(None))
            if typing.get_origin(tp) is typing.Literal:
                tp = str  # the config checks the choice and names it
            if f.name in seen:
                name, t, d, h, objs = seen[f.name]
                default = f"{d} ({objs[0]}), {f.default} ({cls.objective})" if d != f.default else d
                seen[f.name] = (name, t, default, h, (*objs, cls.objective))
            else:
                seen[f.name] = (f.name, tp, f.default, str(f.metadata.get("help", "")), (cls.objective,))
    return list(seen.values())


_DESCRIPTION = ("Train only the rows of tokens in the data and write a NEW folder (the matrix as safetensors, its "
                "tokenizer, run.json) that opens like any other matrix.")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a matrix on a corpus (sgns) or labelled texts (classify)",
                       description=_DESCRIPTION)
    add_arguments(p)
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train on N processes of this machine (torch.distributed, launched through torchrun): "
                        "one per GPU, or up to one per CPU core; across machines run torchrun yourself with "
                        "`-m core.finetune` and the same flags")
    p.set_defaults(func=cmd_finetune)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``embedscope finetune`` (also those of ``python -m core.finetune`` under torchrun)."""
    add_source(p)
    p.add_argument("--corpus", required=True, metavar="FILE",
                   help="text file (one document a line) or .jsonl/.csv/.tsv; 'demo' for the bundled finance "
                        "corpus (sgns) or labelled headlines (classify)")
    p.add_argument("--objective", choices=("sgns", "classify"), default="sgns",
                   help="sgns: skip-gram on raw text; classify: embedding inside a text classifier")
    p.add_argument("--text-column", metavar="C", help="text column of a .csv/.tsv/.jsonl file (default 'text')")
    p.add_argument("--label-column", metavar="L", help="label column for classify (default 'label')")
    p.add_argument("--watch", metavar="W1,W2", help="comma-separated words to watch (default: the most "
                   "frequent words of the data)")
    p.add_argument("--out", metavar="DIR", help="the NEW output folder (default: a new folder under "
                   "$EMBEDSCOPE_RUNS or ./runs)")
    p.add_argument("--force", action="store_true", help="replace --out when it holds an earlier run")
    hp = p.add_argument_group("hyperparameters (defaults shown per objective)")
    for name, tp, default, help_text, objs in _settings():
        if name == "label_column":
            continue
        flag = "--" + name.replace("_", "-")
        scope = "" if len(objs) == 2 else f" [{objs[0]} only]"
        if tp is bool:
            hp.add_argument(flag, action="store_true", default=None, help=f"{help_text}{scope}")
        else:
            hp.add_argument(flag, type=tp, default=None, metavar=name.upper(),
                            help=f"{help_text} (default {default}){scope}")
    # the launcher passes the whole config as JSON (the page's settings, already validated)
    p.add_argument("--config-json", metavar="FILE", help=argparse.SUPPRESS)
    add_json(p)


def _config(args: argparse.Namespace) -> Any:
    from core.finetune import config_for

    settings: dict[str, Any] = {}
    if getattr(args, "config_json", None):
        import json
        from pathlib import Path

        settings.update(json.loads(Path(args.config_json).read_text(encoding="utf-8")))
    for name, _tp, _d, _h, objs in _settings():
        value = getattr(args, name, None)
        if value is None:
            continue
        if args.objective not in objs:
            from core.errors import ParameterError

            raise ParameterError(f"--{name.replace('_', '-')}: applies to {objs[0]} only, not {args.objective}")
        settings[name] = value
    if args.text_column:
        settings["text_column"] = args.text_column
    if args.watch:
        settings["watch"] = tuple(w.strip() for w in args.watch.split(",") if w.strip())
    return config_for(args.objective, **settings)


def _data(args: argparse.Namespace) -> Any:
    from core import finetune

    if args.corpus == "demo":
        return finetune.demo_corpus() if args.objective == "sgns" else finetune.demo_labels()
    return args.corpus


def cmd_finetune(args: argparse.Namespace) -> int:
    from core import finetune

    config = _config(args)  # settings are checked before the matrix is opened
    config.validate()
    nproc = args.nproc
    if nproc is not None and nproc != 1:
        from core.finetune import distributed

        distributed.check_nproc(nproc, config.device)  # before the matrix is opened
        out = args.out or str(finetune.default_out(config.objective))
        with progress_bar(f"finetune {args.objective} ×{nproc}") as bar:
            folder = distributed.launch(args.source, _data(args), config, out, nproc, tensor=args.tensor,
                                        vocab=args.vocab, limit=args.limit, force=args.force, progress=bar)
        _emit_run(args, finetune.load_run(folder))
        return 0
    m = open_source(args)
    with progress_bar(f"finetune {args.objective}") as bar:
        run = finetune.finetune(m, _data(args), config, args.out, force=args.force, progress=bar)
    _emit_run(args, run)
    return 0


def worker_main(argv: list[str] | None = None) -> int:
    """``python -m core.finetune``: one rank of a distributed run started by torchrun (or a plain run).

    Every rank trains; rank 0 writes the run folder after all ranks have finished, and prints the result.
    """
    import os
    import signal

    from core import finetune
    from core.cli._common import fail
    from core.errors import EmbedscopeError
    from core.finetune import distributed
    from core.finetune.runs import train_run

    p = argparse.ArgumentParser(prog="python -m core.finetune", description=_DESCRIPTION)
    add_arguments(p)
    args = p.parse_args(argv)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so a stopped rank unwinds (temp folders are removed), then exits

    signal.signal(signal.SIGTERM, _terminate)
    dist = distributed.SINGLE
    try:
        config = _config(args)
        config.validate()
        dist, device = distributed.init_from_env(config.device)
        m = open_source(args)
        out = args.out or dist.broadcast(str(finetune.default_out(config.objective)) if dist.is_main else None)
        relay = os.environ.get(distributed.PROGRESS_ENV) and dist.is_main
        with progress_bar(f"finetune {args.objective} rank {dist.rank}/{dist.world_size}") as bar:
            progress = distributed.progress_line if relay else (bar if dist.is_main else None)
            trained = train_run(m, _data(args), config, out, force=args.force, progress=progress, dist=dist,
                                device=device)
        dist.barrier()  # every rank has finished: only now may rank 0 write
        if dist.is_main:
            run = trained.write(m, force=args.force)
            distributed.write_result(run.path)
            if not relay:
                _emit_run(args, run)
        return 0
    except KeyboardInterrupt:
        return fail(f"rank {dist.rank}: interrupted; nothing was written")
    except EmbedscopeError as err:
        distributed.report_failure(dist, err)
        from core.errors import FormatError, OutputExistsError, ParameterError

        return 2 if isinstance(err, (ParameterError, FormatError, OutputExistsError)) else 1
    except Exception as err:  # a rank's crash (out of memory, a lost peer): say which rank, then fail
        distributed.report_failure(dist, err)
        return 1
    finally:
        distributed.shutdown(dist)


def _emit_run(args: argparse.Namespace, run: Run) -> None:
    card = run.card
    metrics = {k: v for k, v in card.metrics.items() if k not in ("baseline", "finetuned")}
    if card.objective == "classify":
        for key in ("baseline", "finetuned"):
            metrics[key] = {k: v for k, v in card.metrics[key].items() if k != "text"}
    payload = {"out": str(run.path), "run_id": card.run_id, "objective": card.objective,
               "device": card.device, "duration_s": card.duration_s, "steps": card.steps,
               "epochs_run": card.epochs_run, "tokens_seen": card.tokens_seen,
               "unknown_tokens": card.unknown_tokens, "source_fingerprint": card.source.fingerprint,
               "output_fingerprint": card.output.fingerprint, "metrics": metrics,
               "run_json": str(run.path / RUN_FILE), "distributed": card.distributed}

    def text() -> str:
        c = card.corpus
        lines = [f"wrote {run.path} ({card.objective}, {card.device}, {card.duration_s:.1f} s)",
                 f"data: {c['documents']:,} documents, {c['tokens']:,} tokens, {c['unknown']:,} unknown pieces "
                 f"({c['unknown_policy']})",
                 f"{card.steps:,} steps over {card.epochs_run} epoch(s), {card.tokens_seen:,} tokens seen, "
                 f"{card.output.rows_changed or 0:,} rows changed"]
        d = card.distributed
        if card.world_size > 1:
            per_rank = ", ".join(f"rank {r['rank']} {r['tokens_per_s'] or 0:,.0f}" for r in d.get("ranks", []))
            lines.append(f"{d['world_size']} processes ({d['backend']}, {d.get('sync')}); tokens/s: {per_rank}")
        mt = card.metrics
        if card.objective == "sgns":
            lines.append(f"loss {mt['first_epoch_loss']:.4f} (epoch 1) → {mt['final_epoch_loss']:.4f} (last); mean "
                         f"cosine of trained rows to their start {mt['mean_cosine_to_start']:.3f}")
        else:
            lines.append(f"macro-F1 on validation: frozen baseline {mt['baseline_macro_f1']:.4f} → fine-tuned "
                         f"{mt['finetuned_macro_f1']:.4f} (best epoch {mt['best_epoch']})")
            lines += ["", "frozen baseline:", mt["baseline"]["text"], "fine-tuned:", mt["finetuned"]["text"]]
        last = [w for w in card.watch["per_epoch"] if w["epoch"] == card.epochs_run]
        if last:
            lines.append("watch list (cosine to start · nearest neighbours):")
            for w in last:
                nb = ", ".join(t for t, _ in w["neighbours"])
                lines.append(f"  {w['token']:<14} {w['cosine_to_start']:.3f} · {nb}")
        return "\n".join(lines)

    emit(args, payload, text)
