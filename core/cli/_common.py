"""What every command shares: the SOURCE arguments, JSON/text output, errors, a progress bar."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.cli._exit import EXIT_ERROR, EXIT_FAIL, EXIT_OK
from core.jsonsafe import json_safe
from core.loaders import FORMATS, UnknownFormatError, load
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn

__all__ = ["EXIT_ERROR", "EXIT_FAIL", "EXIT_OK"]


def add_source(p: argparse.ArgumentParser, format_flag: str = "--format") -> None:
    """SOURCE and the options that say how to open it.

    Args:
        format_flag: the option naming the input format; commands whose ``--format`` names what they
            write use ``--input-format``.
    """
    p.add_argument("source", metavar="SOURCE", help="model folder or file, .pdparams, .npy, word2vec, "
                   "GloVe, Projector vectors.tsv, or a hub id (org/name)")
    p.add_argument("--tensor", help="tensor or key to read (default: the input embedding)")
    p.add_argument("--vocab", help="vocabulary file or tokenizer folder ('rows' for row numbers)")
    p.add_argument("--limit", type=int, help="read only the first N rows (word2vec/GloVe)")
    p.add_argument("--output-embedding", action="store_true",
                   help="the output embedding (lm_head / GGUF output.weight) instead of the input one; a model "
                        "that ties them gives its input table")
    add_format(p, format_flag)


def add_format(p: argparse.ArgumentParser, flag: str = "--format", dest: str = "input_format",
               what: str = "SOURCE") -> None:
    """The option that names the input format instead of detecting it."""
    p.add_argument(flag, dest=dest, choices=FORMATS, metavar="NAME",
                   help=f"the format of {what}, instead of detecting it: {', '.join(FORMATS)}")
    p.set_defaults(**{f"{dest}_flag": flag})


def open_with(args: argparse.Namespace, source: str, *, tensor: str | None = None, vocab: str | None = None,
              limit: int | None = None, format_dest: str = "input_format", output: bool = False) -> EmbeddingMatrix:
    """``core.load`` with this command's options; an unknown format names this command's flag."""
    try:
        return load(source, tensor=tensor, vocab=vocab, limit=limit, format=getattr(args, format_dest, None),
                    output=output)
    except UnknownFormatError as err:
        raise err.advise(f"pass {getattr(args, f'{format_dest}_flag', '--format')} NAME") from None


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def open_source(args: argparse.Namespace, which: str = "source") -> EmbeddingMatrix:
    return open_with(args, getattr(args, which), tensor=getattr(args, "tensor", None),
                     vocab=getattr(args, "vocab", None), limit=getattr(args, "limit", None),
                     output=bool(getattr(args, "output_embedding", False)))


def emit(args: argparse.Namespace, payload: dict[str, Any], text: Callable[[], str]) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human-readable ``text()``."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(json_safe(payload), ensure_ascii=False, allow_nan=False) + "\n")
    else:
        sys.stdout.write(text().rstrip("\n") + "\n")


def fail(message: str, code: int = EXIT_ERROR) -> int:
    sys.stderr.write(f"embedscope: error: {message}\n")
    return code


@contextmanager
def progress_bar(desc: str) -> Iterator[ProgressFn]:
    """A progress callback drawing a bar on stderr (silent when stderr is not a terminal)."""
    import threading

    from tqdm import tqdm

    # A thread lock, not tqdm's default multiprocessing semaphore: our bars never cross processes, and a
    # semaphore left held by a killed or forked process hangs every later bar in this one.
    tqdm.set_lock(threading.RLock())
    bar = tqdm(total=1000, desc=desc, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)

    def update(fraction: float, message: str) -> None:
        bar.n = int(fraction * 1000)
        bar.set_postfix_str(message[:40], refresh=True)

    try:
        yield update
    finally:
        bar.close()
