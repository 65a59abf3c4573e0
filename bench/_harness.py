"""Timing helpers and the result row every bench returns."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """One comparison: our time against a baseline's, with the target the issue sets.

    ``ratio`` is baseline / ours (higher is better for us) when a baseline was timed.
    """

    bench: str
    what: str
    ours_s: float
    baseline: str = ""
    baseline_s: float | None = None
    target: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_s is None or self.ours_s <= 0:
            return None
        return self.baseline_s / self.ours_s

    def row(self) -> str:
        ratio = f"{self.ratio:.1f}×" if self.ratio is not None else "—"
        base = f"{self.baseline}: {_seconds(self.baseline_s)}" if self.baseline_s is not None else self.baseline
        return f"| {self.what} | {_seconds(self.ours_s)} | {base or '—'} | {ratio} | {self.target} | {self.note} |"


def _seconds(t: float) -> str:
    """A time for the table: milliseconds below 0.1 s, so a per-query figure does not print as 0.000 s."""
    return f"{t * 1e3:.2f} ms" if t < 0.1 else f"{t:.3f} s"


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Smallest wall time of ``repeat`` calls (seconds), after a garbage collection."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def alternating_best(calls: Sequence[Callable[[], object]], rounds: int = 7) -> list[float]:
    """Each call's smallest wall time (seconds) over ``rounds`` rounds that run the calls in turn.

    For sides that each read a whole matrix per call: alternating them many times over, each keeping its best,
    stops one noisy moment of a shared machine from deciding their ratio.
    """
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, call in enumerate(calls):
            best[i] = min(best[i], best_of(call, 1))
    return best


def proc_status_kib(field: str, pid: int | str = "self") -> int:
    """A memory field of ``/proc/PID/status`` (Linux) in KiB, e.g. VmRSS (now) or VmHWM (this process's peak).

    VmHWM rather than getrusage's ru_maxrss for a child: after fork + exec, ru_maxrss starts from the
    parent's peak (Linux keeps it in the signal struct), which hides the child's own.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")
