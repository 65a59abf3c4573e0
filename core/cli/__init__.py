"""``embedscope``: the command line over :mod:`core`, every command with ``--json``.

Exit codes: 0 success, 1 a check failed (``audit --fail-on``), 2 the input could not be read or an
argument is wrong. Commands live in ``core/cli/_cmd_*.py`` modules, each with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from core.cli._exit import EXIT_ERROR
from core.errors import EmbedscopeError

#: Every command, the module that defines it and its one-line help. Only the module of the command being run
#: is imported (each pulls in what its work needs: torch, pandas, umap...), so ``embedscope info`` and
#: ``embedscope --help`` start at once; a test checks this table against the modules' own parsers.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("_cmd_open", "format, tensor, vocabulary size, dim, dtype"),
    "lookup": ("_cmd_open", "text → tokenizer pieces → ids → vectors"),
    "stats": ("_cmd_open", "mean, std, min, max, row norms"),
    "neighbors": ("_cmd_similarity", "nearest tokens to a token, a text or a formula such as 'king - man + woman'"),
    "neighbours": ("_cmd_similarity", "the same as neighbors"),
    "analogy": ("_cmd_similarity", "solve 'king - man + woman' by 3CosAdd (add) or 3CosMul (mul)"),
    "similarity": ("_cmd_similarity", "cosine similarity between every pair of a few words or texts"),
    "doesnt-match": ("_cmd_similarity", "which word of a list doesn't belong (furthest from the mean)"),
    "evaluate": ("_cmd_similarity", "word-analogy accuracy and word-pair correlations (gensim's numbers)"),
    "project": ("_cmd_project", "PCA, t-SNE or UMAP to 2-D/3-D; writes token,id,x,y[,z] as CSV"),
    "export": ("_cmd_project", "write the matrix as Projector TSV, word2vec text/binary, safetensors or npy"),
    "audit": ("_cmd_audit", "health audit: damage, duplicates, under-trained tokens, anisotropy, ..."),
    "gate": ("_cmd_gate", "release gate: audit + comparison with the last release + quantised copy"),
    "compare": ("_cmd_compare", "what moved between A and B: aligned drift, Jaccard@k of neighbourhoods"),
    "quantize": ("_cmd_compare", "drift and Jaccard@k of fp16, bf16 and int8 copies of a matrix"),
    "finetune": ("_cmd_finetune", "fine-tune a matrix on a corpus (sgns) or labelled texts (classify)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: ``command``'s module registers its real subcommands; every other command is listed by name
    and help only (None: every module registers, as the tests and docs want)."""
    parser = argparse.ArgumentParser(
        prog="embedscope",
        description="Look inside embedding matrices: open, inspect, compare, audit, fine-tune.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = {m for m, _ in COMMANDS.values()} if command is None else (
        {COMMANDS[command][0]} if command in COMMANDS else set())
    for module in sorted(wanted):
        importlib.import_module(f"core.cli.{module}").register(sub)
    registered = set(sub.choices)
    for name, (_, text) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, help=text, add_help=False)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option: the command, when it is one we know."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (also used as the console script).

    The one guard of the command line: our errors print as they are, anything unforeseen as one short
    line (the traceback goes to the log file), and nothing a file holds reaches the terminal as a control
    sequence (a tensor named ``\x1b]0;...`` is printed escaped).
    """
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Visible(out, keep="\n\t"), _Visible(err, keep="\n\t\r")  # \r: progress bars
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = out, err


def _run(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    args = build_parser(command if command is not None else "").parse_args(argv)
    from core.cli._common import fail  # after parsing: --help never loads the readers
    try:
        code = int(args.func(args) or 0)
    except EmbedscopeError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted")
    except RecursionError:
        where = _log_exception(args)
        return fail("the input is nested too deeply to read (JSON or a pickle nested thousands of levels); "
                    f"it is not a file we can open{where}")
    except (OSError, MemoryError) as err:
        return fail(f"{type(err).__name__}: {err}")
    except Exception as err:  # the last line of defence: a short message, never a traceback
        where = _log_exception(args)
        return fail(f"unexpected {type(err).__name__}: {str(err)[:200]}{where}")
    return code if code else 0


LOG_ENV = "EMBEDSCOPE_LOG"


def _log_exception(args: argparse.Namespace) -> str:
    """Append the current traceback to the log file (``EMBEDSCOPE_LOG`` or the cache folder); '' if unwritable."""
    import datetime
    import traceback
    from pathlib import Path

    path = Path(os.environ.get(LOG_ENV) or Path.home() / ".cache" / "embedscope" / "errors.log")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(f"--- {datetime.datetime.now().isoformat()} embedscope {getattr(args, 'command', '')}\n")
            f.write(traceback.format_exc())
    except OSError:
        return ""
    return f" (details in {path})"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class _Visible(io.TextIOBase):
    """A text stream that writes control characters (escape sequences, bells, C1 codes) as ``\\xNN``."""

    def __init__(self, raw: TextIO, keep: str) -> None:
        self._raw = raw
        self._keep = keep

    def _escape(self, m: re.Match[str]) -> str:
        c = m.group()
        return c if c in self._keep else f"\\x{ord(c):02x}"

    def write(self, s: str) -> int:
        self._raw.write(_CONTROL.sub(self._escape, s))
        return len(s)

    def flush(self) -> None:
        self._raw.flush()

    def isatty(self) -> bool:
        return self._raw.isatty()

    def fileno(self) -> int:
        return self._raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._raw, "encoding", "utf-8"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["EXIT_ERROR", "build_parser", "main"]
