"""The compiled CPU update of SGNS: word2vec's own per-pair loop (numba), on the training tables in place.

A batched update in torch spends most of a CPU's time gathering rows into temporaries, allocating, and
scattering them back; word2vec and gensim instead walk the pairs one by one and update the few rows each
touches directly. This is that loop: for each (centre, context) pair, the positive and the ``K`` negatives
are scored against the centre row, each output row is moved at once, and the centre row takes the summed
step after its last target (gensim's order, so a tied table sees the same sequence of reads and writes).

Deterministic: pairs and negatives come in from the caller (drawn with the run's seeded generator), and the
loop visits them in order on one thread. NaN and infinity are allowed to propagate (no ``nnan``/``ninf``
fast-math flags), so a diverging run is caught by the monitor as before.
Compiled once per machine (numba's cache, next to this file); the first use in a fresh install compiles.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

# Fast-math without the flags that assume finite values: reassociation lets the dot products vectorise.
_FAST = {"reassoc", "contract", "arcp", "nsz"}


@njit(nogil=True, cache=True, fastmath=_FAST)
def sgns_pairs(w_in: np.ndarray, w_out: np.ndarray, centres: np.ndarray, targets: np.ndarray, lr: float,
               work: np.ndarray) -> tuple[float, float]:  # pragma: no cover
    """Apply SGNS updates for ``centres`` (B) against ``targets`` (B × (1 + K): context, then negatives).

    Args:
        w_in, w_out: float32 tables updated in place (the same array when the context is tied).
        lr: the learning rate of this batch.
        work: a float32 scratch vector of length dim.

    Returns:
        the summed loss over the batch's pairs, and the sum of squared gradient norms of the rows' steps
        (each pair's centre step and target steps, before scaling by ``lr``).
    """
    b_n, kk = targets.shape
    d = w_in.shape[1]
    lr32 = np.float32(lr)
    loss = 0.0
    gsq = 0.0
    for b in range(b_n):
        c = centres[b]
        ctx = targets[b, 0]
        for i in range(d):
            work[i] = np.float32(0.0)
        vc_sq = np.float32(0.0)
        for i in range(d):
            vc_sq += w_in[c, i] * w_in[c, i]
        for j in range(kk):
            t = targets[b, j]
            if j > 0 and t == ctx:  # word2vec skips a negative that is the positive context itself
                continue
            f = np.float32(0.0)
            for i in range(d):
                f += w_in[c, i] * w_out[t, i]
            if j == 0:
                # softplus(-f), stable on both sides
                loss += float(max(-f, np.float32(0.0))) + math.log1p(math.exp(-abs(f)))
                g = np.float32(1.0) - np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-f)))
            else:
                loss += float(max(f, np.float32(0.0))) + math.log1p(math.exp(-abs(f)))
                g = -np.float32(1.0) / (np.float32(1.0) + np.float32(math.exp(-f)))
            gsq += float(g) * float(g) * float(vc_sq)
            step = g * lr32
            for i in range(d):
                work[i] += step * w_out[t, i]
            for i in range(d):
                w_out[t, i] += step * w_in[c, i]
        sq = np.float32(0.0)
        for i in range(d):
            sq += work[i] * work[i]
            w_in[c, i] += work[i]
        if lr32 > 0:
            gsq += float(sq) / (float(lr32) * float(lr32))
    return loss, gsq


class CompiledStep:
    """The CPU update: word2vec's per-pair loop, compiled (:func:`sgns_pairs` on the tables)."""

    def __init__(self, w_in: torch.Tensor, w_out: torch.Tensor) -> None:
        # numpy views share the tensors' memory: the loop updates the training tables in place
        self.w_in, self.w_out = w_in.numpy(), w_out.numpy()
        self.work = np.empty(self.w_in.shape[1], dtype=np.float32)
        # load (or compile) the loop now, before the run's clock starts: an empty batch changes nothing
        self(torch.zeros(0, dtype=torch.int64), torch.zeros((0, 2), dtype=torch.int64), 0.0)

    def __call__(self, centres: torch.Tensor, targets: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        loss, gsq = sgns_pairs(self.w_in, self.w_out, centres.numpy(), targets.numpy(), lr, self.work)
        return torch.tensor(loss / max(1, centres.shape[0])), torch.tensor(math.sqrt(gsq))
