"""What SGNS trains on: word2vec's subsampling, its negative table, dynamic-window pairs, corpus chunks.

Each is a function of the corpus counts, or of one chunk of tokens and the run's seeded generator; the
training loop in :mod:`core.finetune.sgns` calls them and owns the schedule, the tables and the updates.
"""

from __future__ import annotations

import numpy as np
import torch

#: Tokens per chunk of pair generation: bounds memory on any corpus size (pairs ≈ tokens × (window + 1)).
CHUNK_TOKENS = 1 << 18


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """word2vec's subsampling: keep a token of count c with p = (sqrt(c / t) + 1) · t / c, t = sample · total."""
    if sample <= 0:
        return np.ones(counts.shape, dtype=np.float32)
    t = sample * float(counts.sum())
    p = (np.sqrt(counts / t) + 1.0) * (t / counts)
    return np.minimum(p, 1.0).astype(np.float32)


def negative_table(counts: np.ndarray, size: int) -> np.ndarray:
    """A table whose entries follow unigram^0.75 (word2vec's): a uniform draw from it is one negative."""
    p = counts.astype(np.float64) ** 0.75
    cdf = np.cumsum(p / p.sum())
    table = np.searchsorted(cdf, (np.arange(size, dtype=np.float64) + 0.5) / size)
    return np.minimum(table, counts.shape[0] - 1).astype(np.int32)


def pairs(tok: torch.Tensor, doc: torch.Tensor, keep_p: torch.Tensor, window: int,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Shuffled (centre, context) pairs of one chunk after subsampling, with a dynamic window.

    Returns:
        centres, contexts, and the number of tokens kept by subsampling.
    """
    dev = tok.device
    keep = torch.rand(tok.shape[0], generator=gen, device=dev) < keep_p[tok]
    s_tok, s_doc = tok[keep], doc[keep]
    n = int(s_tok.shape[0])
    reach = torch.randint(1, window + 1, (n,), generator=gen, device=dev)
    centres, contexts = [], []
    for o in range(1, min(window, n - 1) + 1):
        same = s_doc[o:] == s_doc[:-o]
        fwd = same & (reach[:-o] >= o)  # centre i sees i + o
        centres.append(s_tok[:-o][fwd])
        contexts.append(s_tok[o:][fwd])
        back = same & (reach[o:] >= o)  # centre i + o sees i
        centres.append(s_tok[o:][back])
        contexts.append(s_tok[:-o][back])
    if not centres:
        empty = torch.zeros(0, dtype=torch.int64, device=dev)
        return empty, empty, n
    c, x = torch.cat(centres), torch.cat(contexts)
    perm = torch.randperm(c.shape[0], generator=gen, device=dev)
    return c[perm], x[perm], n


def chunk_bounds(doc: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Token ranges of about ``size`` tokens that never split a document (unless it alone is larger)."""
    n = int(doc.shape[0])
    if n <= size:
        return [(0, n)]
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    bounds: list[tuple[int, int]] = []
    a = 0
    while a < n:
        target = a + size
        if target >= n:
            bounds.append((a, n))
            break
        j = int(np.searchsorted(starts, target, side="right")) - 1
        b = int(starts[j]) if starts[j] > a else target
        bounds.append((a, b))
        a = b
    return bounds
