"""Before/after comparison (issue 7): two 30522×384 matrices (MiniLM and a rotated, partly perturbed copy),
with Procrustes alignment, drift and Jaccard@10 for every shared token, against the plain way (scipy's
orthogonal Procrustes, scikit-learn's brute-force cosine neighbours for both spaces, Jaccard over Python
sets); and the quantisation impact of fp16, bf16 and int8 copies.

Issue 17: two seeded 262,144×640 matrices (B = A + small noise), Jaccard@10 of every token, through the
approximate search "auto" picks at that size, with its recall@10 against the exact search on 20,000 rows
of A; the exact compare's time is extrapolated from 16,384 tokens (its cost grows with their square)."""

from __future__ import annotations

import os
import time

import numpy as np

import core
from bench._harness import Result
from core import compare as cp
from core import search

K = 10
BIG_ROWS, BIG_DIM = 262_144, 640
#: Tokens the exact compare of the big pair is timed on, and rows of the recall sample.
EXACT_TIMED, RECALL_SAMPLE = 16_384, 20_000


def seeded_pair(rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (groups of ~32 tokens around seeded centres, with a decaying spectrum as trained embeddings have)
    and B = A + small noise, float32."""
    rng = np.random.default_rng(seed)
    spec = (np.arange(1, dim + 1, dtype=np.float32) ** -0.5).astype(np.float32)
    centres = rng.standard_normal((max(1, rows // 32), dim), dtype=np.float32) * spec
    a = centres[rng.integers(0, len(centres), rows)]
    a += rng.standard_normal((rows, dim), dtype=np.float32) * (spec * np.float32(0.5))
    b = a + rng.standard_normal((rows, dim), dtype=np.float32) * (spec * np.float32(0.1))
    return a, b


def _baseline(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Drift and Jaccard@k the plain way; returns the Jaccard values."""
    from scipy.linalg import orthogonal_procrustes
    from sklearn.neighbors import NearestNeighbors

    ua = a / np.linalg.norm(a, axis=1, keepdims=True)
    ub = b / np.linalg.norm(b, axis=1, keepdims=True)
    rot, _ = orthogonal_procrustes(ua, ub)
    aligned = ua @ rot
    _drift = 1.0 - np.einsum("ij,ij->i", aligned, ub)
    sets = []
    for x in (a, b):
        nn = NearestNeighbors(n_neighbors=K + 1, metric="cosine", algorithm="brute", n_jobs=-1).fit(x)
        _, idx = nn.kneighbors(x)
        sets.append([set(row[row != i][:K].tolist()) for i, row in enumerate(idx)])
    return np.array([len(x & y) / len(x | y) for x, y in zip(*sets, strict=True)])


def run() -> list[Result]:
    a = core.load(core.demo_path())
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((a.dim, a.dim)))
    v = np.asarray(a.vectors, dtype=np.float64) @ q
    moved = rng.choice(len(a), size=1000, replace=False)
    v[moved] += rng.standard_normal((moved.size, a.dim)) * 0.1
    b = a.with_vectors(v.astype(np.float32))
    a.norms, b.norms, a.fingerprint, b.fingerprint  # noqa: B018 - warm what a running app has cached
    where = f"device: {search.resolve_device()}"

    t = time.perf_counter()
    c = cp.compare(a, b, k=K)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    base_j = _baseline(np.asarray(a.vectors, dtype=np.float64), np.asarray(b.vectors, dtype=np.float64))
    base = time.perf_counter() - t
    agree = float(np.mean(np.isclose(base_j, c.jaccard)))
    top = set(c.table(top=1000)["token"])
    hit = len(top & {a.index_to_key[i] for i in moved}) / 1000

    t = time.perf_counter()
    cp.quantization_impact(a, k=K)
    quant = time.perf_counter() - t
    return [
        Result("compare", f"compare 30,522×384 vs a rotated copy: Procrustes, drift, Jaccard@{K} of every token",
               ours, "scipy Procrustes + sklearn brute kNN ×2 + set Jaccard", base, "≤ 20 s on 2 cores",
               f"Jaccard agrees on {agree:.2%} of tokens (the rest: ties); {hit:.0%} of the 1,000 perturbed "
               f"tokens are the 1,000 most moved; {where}"),
        Result("compare", f"quantisation impact: fp16, bf16, int8 copies, drift and Jaccard@{K} each", quant,
               "", None, "", f"4 neighbour searches (the original's shared); {where}"),
        *_big(),
    ]


def _cpu_seconds() -> float:
    """CPU time of this process and of its ended children (NN-descent builds its graphs in one)."""
    now = os.times()
    return now.user + now.system + now.children_user + now.children_system


def _big() -> list[Result]:
    va, vb = seeded_pair(BIG_ROWS, BIG_DIM)
    tokens = [f"t{i}" for i in range(BIG_ROWS)]
    a, b = core.EmbeddingMatrix(va, tokens), core.EmbeddingMatrix(vb, tokens)
    del va, vb
    a.norms, b.norms, a.fingerprint, b.fingerprint  # noqa: B018 - warm what a running app has cached
    t = time.perf_counter()
    cp.compare(a, b, k=K, align=False, limit=EXACT_TIMED, search="exact")
    exact = (time.perf_counter() - t) * (BIG_ROWS / EXACT_TIMED) ** 2
    t, cpu = time.perf_counter(), _cpu_seconds()
    c = cp.compare(a, b, k=K, align=False)
    ours, ours_cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    sample = np.sort(np.random.default_rng(1).choice(BIG_ROWS, size=RECALL_SAMPLE, replace=False))
    exact_ids, _ = search.knn_rows(a, sample, k=K, device="cpu")
    recall = float(np.mean([np.intersect1d(c.neighbors_a[i], exact_ids[j]).size / K
                            for j, i in enumerate(sample.tolist())]))
    s = c.summary()
    return [Result("compare", f"compare 262,144×640 vs A + noise: Jaccard@{K} of every token ({c.search} "
                   "neighbours, 'auto')", ours, f"exact compare (extrapolated from {EXACT_TIMED:,} tokens)", exact,
                   "≤ 120 s on 2 cores", f"recall@{K} vs exact search on {RECALL_SAMPLE:,} rows of A: {recall:.4f} "
                   f"(≥ 0.99); CPU time {ours_cpu:.0f} s; median Jaccard {s.median_jaccard:.3f}")]
