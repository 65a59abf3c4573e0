"""``embedscope``: the command line over :mod:`core`, every command with ``--json``.

Exit codes: 0 success, 1 a check failed (``audit --fail-on``), 2 the input could not be read or an
argument is wrong. Commands live in ``core/cli/_cmd_*.py`` modules, each with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

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
    """Run one command; returns the exit code (also used as the console script)."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
    except EmbedscopeError as err:
        return fail(str(err))
    except KeyboardInterrupt:
        return fail("interrupted")
    except (OSError, MemoryError) as err:
        return fail(f"{type(err).__name__}: {err}")
    return code if code else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["EXIT_ERROR", "build_parser", "main"]
