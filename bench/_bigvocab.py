"""A Gemma-3-sized vocabulary for the projection benches: a seeded 262,144 × 640 float32 matrix saved as
``vectors.npy`` with a ``vocab.txt`` of 262,144 distinct tokens (MiniLM's WordPiece tokens, then the same
tokens with a numeric suffix), so labels have the lengths of real subword tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROWS = 262_144
DIM = 640
SEED = 0


def tokens(rows: int = ROWS) -> list[str]:
    """``rows`` distinct token strings of realistic length."""
    import core

    base = list(core.load("demo").index_to_key)
    seen: set[str] = set()
    out: list[str] = []
    i = 0
    while len(out) < rows:
        t = base[i % len(base)] if i < len(base) else f"{base[i % len(base)]}{i // len(base)}"
        i += 1
        if t in seen or "\n" in t or not t.strip():
            continue
        seen.add(t)
        out.append(t)
    return out


def build(folder: Path, rows: int = ROWS, dim: int = DIM) -> Path:
    """Write the matrix and its vocabulary into ``folder``; returns the ``.npy`` path."""
    folder.mkdir(parents=True, exist_ok=True)
    npy = folder / "vectors.npy"
    rng = np.random.default_rng(SEED)
    out = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(rows, dim))
    step = 1 << 15
    for s in range(0, rows, step):
        out[s:s + step] = rng.standard_normal((min(step, rows - s), dim), dtype=np.float32)
    out.flush()
    del out
    (folder / "vocab.txt").write_text("\n".join(tokens(rows)) + "\n", encoding="utf-8")
    return npy
