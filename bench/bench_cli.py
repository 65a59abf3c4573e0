"""CLI start (issue 17): `embedscope info demo --json` and `embedscope --help` in a fresh process, best of 5,
against the target (≤ 0.6 s and ≤ 0.3 s); the figure before this round was 2.7 s for info (every command module
imported torch and pandas at start)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench._harness import Result


def _best(args: list[str], n: int = 5) -> float:
    root = Path(__file__).resolve().parents[1]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, check=True, cwd=root)
        times.append(time.perf_counter() - t)
    return min(times)


def run() -> list[Result]:
    return [
        Result("cli", "embedscope info demo --json, fresh process", _best(["info", "demo", "--json"]),
               target="≤ 0.6 s", note="2.7 s before this round"),
        Result("cli", "embedscope --help, fresh process", _best(["--help"]), target="≤ 0.3 s"),
    ]
