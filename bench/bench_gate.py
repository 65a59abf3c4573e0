"""The release gate (issue 16): the whole gate on MiniLM against an SGNS fine-tune of itself (target ≤ 20 s on
2 cores), and on two 128,256 × 2,048 matrices (target ≤ 120 s, Jaccard over the 50,000 most frequent tokens),
with the peak memory of that run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import core
from bench._harness import Result
from core import finetune as ft
from core.gate import gate

BIG = """
import sys, time, numpy as np
from core.matrix import EmbeddingMatrix
from core.gate import gate
from bench._harness import proc_status_kib
rows, dim = 128_256, 2_048
rng = np.random.default_rng(0)
a = rng.standard_normal((rows, dim), dtype=np.float32)
b = a.copy()
b[:2_000] += rng.standard_normal((2_000, dim), dtype=np.float32) * 0.1
tokens = [f"t{i}" for i in range(rows)]
old, new = EmbeddingMatrix(a, tokens), EmbeddingMatrix(b, tokens)
t = time.perf_counter()
rep = gate(new, old)
print("SECONDS", time.perf_counter() - t, "PEAK", proc_status_kib("VmHWM"), "VERDICT", rep.verdict)
"""


def run() -> list[Result]:
    demo = core.load("demo")
    texts, _ = ft.read_texts(ft.demo_corpus())
    res = ft.train_sgns(demo, ft.tokenize(demo, texts), ft.SGNSConfig(epochs=1, seed=0, watch_size=0))
    tuned = demo.with_vectors(res.apply(demo))
    t = time.perf_counter()
    rep = gate(tuned, demo)
    small = time.perf_counter() - t
    out = [Result("gate", "gate: MiniLM vs an SGNS fine-tune of itself (2 audits + compare of 30,522 tokens)",
                  small, target="≤ 20 s", note=f"verdict {rep.verdict}, {rep.summary()}")]
    if os.environ.get("EMBEDSCOPE_BENCH_BIG", "1") != "0":
        root = Path(__file__).resolve().parents[1]
        proc = subprocess.run([sys.executable, "-c", BIG], capture_output=True, text=True, cwd=root, check=True)
        parts = proc.stdout.split()
        seconds, peak = float(parts[parts.index("SECONDS") + 1]), int(parts[parts.index("PEAK") + 1])
        fp32 = 128_256 * 2_048 * 4 / 2**20
        out.append(Result("gate", "gate: two 128,256 × 2,048 matrices (Jaccard over the 50,000 most frequent)",
                          seconds, target="≤ 120 s",
                          note=f"peak RSS {peak / 1024:.0f} MiB for two {fp32:.0f} MiB fp32 tables "
                               f"({peak / 1024 / (2 * fp32):.2f}× their size)"))
    return out
