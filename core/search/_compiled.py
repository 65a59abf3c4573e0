"""The engine's CPU scan for batches, through the compiled top-k loops of :mod:`core.search._kernels`.

Imported only where a batch needs it: numba's import costs ~0.3 s, worth it for batches, not one query.
The loops release the GIL, so each chunk's queries are split over one thread per core; the threads live
as long as one scan.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.progress import Reporter
from core.search import _engine
from core.search._backends import NumpyOps

#: Columns per chunk of the compiled scan: a query's few basis rows of a chunk stay in the core's cache.
_CHUNK = 4096


def max_k() -> int:
    """The largest ``k`` the compiled loops take (0 where numba cannot be imported)."""
    try:
        from core.search import _kernels
    except (ImportError, OSError, RuntimeError):  # pragma: no cover - numba missing, or no cache it can write
        return 0
    return _kernels.MAX_K


def _on_threads(pool: ThreadPoolExecutor | None, n: int, run: Callable[[int, int], None],
                min_per_thread: int = 32) -> None:
    """``run(a, b)`` over contiguous slices of range(n), on the pool's threads (the loops release the GIL)."""
    workers = 1 if pool is None else max(1, min(os.cpu_count() or 1, n // max(1, min_per_thread)))
    if workers == 1 or pool is None:
        run(0, n)
        return
    bounds = np.linspace(0, n, workers + 1).astype(int)
    for fut in [pool.submit(run, int(a), int(b)) for a, b in itertools.pairwise(bounds)]:
        fut.result()


def scan_compiled(ops: NumpyOps, plan: _engine.Plan, k: int, exclude: np.ndarray | None, n_scan: int,
                  blocked: np.ndarray | None, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The engine's scan of every output of ``plan`` on the CPU, with the compiled loops."""
    cores = os.cpu_count() or 1
    if cores == 1:
        return _scan(None, ops, plan, k, exclude, n_scan, blocked, report, what)
    with ThreadPoolExecutor(max_workers=cores, thread_name_prefix="embedscope-search") as pool:
        return _scan(pool, ops, plan, k, exclude, n_scan, blocked, report, what)


def _scan(pool: ThreadPoolExecutor | None, ops: NumpyOps, plan: _engine.Plan, k: int, exclude: np.ndarray | None,
          n_scan: int, blocked: np.ndarray | None, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    from core.search import _kernels as kn

    block_rows = _engine._BLOCK_ROWS
    n_out = plan.n_out
    best_s = np.full((n_out, k), -np.inf, dtype=np.float32)
    best_i = np.full((n_out, k), -1, dtype=np.int64)
    ex = exclude if exclude is not None else np.empty((n_out, 0), dtype=np.int64)
    none_blocked = np.empty(0, dtype=np.bool_)
    no_sq = np.empty(0, dtype=np.float32)
    if plan.terms is not None:
        basis = ops.put(plan.basis)
        terms = np.ascontiguousarray(plan.terms, dtype=np.int64)
        weights = (np.ascontiguousarray(plan.weights, dtype=np.float32) if plan.weights is not None
                   else np.ones(terms.shape, dtype=np.float32))
        mode = {"cosmul": kn.MODE_COSMUL, "euclidean": kn.MODE_EUCLIDEAN}.get(plan.mode, kn.MODE_SUM)
        chunk = _CHUNK
    else:
        chunk = _engine.chunk_rows(n_scan, max(1, min(n_out, block_rows)), ops.vectors.shape[1])
    n_blocks = 1 if plan.terms is not None else -(-n_out // block_rows)
    steps = n_blocks * -(-n_scan // chunk)
    for ci, c0 in enumerate(range(0, n_scan, chunk)):
        c1 = min(n_scan, c0 + chunk)
        rows = ops.rows(c0, c1)
        blk = np.ascontiguousarray(blocked[c0:c1]) if blocked is not None else none_blocked
        if plan.terms is not None:
            f = ops.matmul(basis, rows)

            def scale(a: int, b: int, f: np.ndarray = f, c0: int = c0, c1: int = c1) -> None:
                _engine.scale_products(ops, plan, f[a:b], c0, c1)  # numpy lets go of the GIL here

            _on_threads(pool, f.shape[0], scale)
            sq = ops.sqnorms(c0, c1) if plan.mode == "euclidean" else no_sq
            report(ci / steps, what)

            def combine(a: int, b: int, f: np.ndarray = f, sq: np.ndarray = sq, blk: np.ndarray = blk,
                        c0: int = c0) -> None:
                kn.combine_keep_best(f, terms, weights, mode, plan.n_pos, sq, a, b, c0, blk, ex, best_s, best_i)

            _on_threads(pool, n_out, combine)
            continue
        for bi, b0 in enumerate(range(0, n_out, block_rows)):
            report((ci * n_blocks + bi) / steps, what)
            b1 = min(n_out, b0 + block_rows)
            s = _engine.query_scores(ops, plan, rows, b0, b1, c0, c1, what)

            def keep(a: int, b: int, s: np.ndarray = s, b0: int = b0, blk: np.ndarray = blk, c0: int = c0) -> None:
                kn.keep_best(s[a:b], b0 + a, c0, blk, ex, best_s, best_i)

            _on_threads(pool, b1 - b0, keep)
    return best_s, best_i
