"""Run the benches and print/write the performance table."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
from pathlib import Path

import bench
from bench._harness import Result

HEADER = ("| what | Embedscope | baseline | ratio | target | note |\n"
          "|---|---|---|---|---|---|")


def main(names: list[str]) -> int:
    mods = sorted(i.name for i in pkgutil.iter_modules(bench.__path__) if i.name.startswith("bench_"))
    chosen = [m for m in mods if not names or m.removeprefix("bench_") in names]
    results: list[Result] = []
    for mod in chosen:
        print(f"# {mod}", file=sys.stderr, flush=True)
        results.extend(importlib.import_module(f"bench.{mod}").run())
    import os

    lines = [f"Measured on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
             "", HEADER, *(r.row() for r in results)]
    text = "\n".join(lines)
    print(text)
    if not names:
        (Path(__file__).parent / "RESULTS.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
