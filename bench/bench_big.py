"""Big matrices (issue 8): a Llama-like 128,256 × 2,048 bf16 checkpoint in two shards.

Open + stats + norms against the raw safetensors read of the same tensor, each in a fresh process so
that peak RSS is that of one job; then a neighbour query and the audit on the opened matrix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _bigckpt
from bench._harness import Result, best_of


def _job(folder: Path, what: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench._bigrun", str(folder), what], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run() -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = _bigckpt.build(Path(tmp) / "llama")
        fp32_mib = _bigckpt.ROWS * _bigckpt.DIM * 4 / 2**20
        raw = min((_job(folder, "raw") for _ in range(2)), key=lambda r: r["seconds"])
        ours = min((_job(folder, "ours") for _ in range(2)), key=lambda r: r["seconds"])
        peak_mib = (ours["peak_kib"] - ours["base_kib"]) / 1024
        results.append(Result("big", "128,256×2,048 bf16: open + stats + norms (fresh process)", ours["seconds"],
                              "raw safe_open get_tensor + float()", raw["seconds"], "≥ 0.33× (within 3×)",
                              f"peak RSS +{peak_mib:.0f} MiB = {peak_mib / fp32_mib:.2f}× fp32 size (≤ 2×)"))
        import core
        from core import audit, search

        m = core.load(folder)
        q = m.get_vector("tok123")
        t = best_of(lambda: search.knn(m, q[None, :], 10), 3)
        results.append(Result("big", "128,256×2,048: one neighbour query (k=10)", t, target="< 0.5 s"))
        start = time.perf_counter()
        audit.audit(m)
        results.append(Result("big", "128,256×2,048: full audit", time.perf_counter() - start, target="≤ 60 s"))
    return results
