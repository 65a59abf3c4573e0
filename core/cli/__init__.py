"""``embedscope``: the command line over :mod:`core`, every command with ``--json``.

Exit codes: 0 success, 1 a check failed (``audit --fail-on``), 2 the input could not be read or an
argument is wrong. Commands live in ``core/cli/_cmd_*.py`` modules, each with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import pkgutil
import re
import sys
from collections.abc import Sequence
from typing import TextIO

from core.cli._common import EXIT_ERROR, fail
from core.errors import EmbedscopeError


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every command module's subcommands."""
    parser = argparse.ArgumentParser(
        prog="embedscope",
        description="Look inside embedding matrices: open, inspect, compare, audit, fine-tune.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    pkg = importlib.import_module("core.cli")
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_cmd_"):
            importlib.import_module(f"core.cli.{info.name}").register(sub)
    return parser


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
    args = build_parser().parse_args(argv)
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
