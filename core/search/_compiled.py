"""The engine's CPU scan for batches, through the compiled top-k loops of :mod:`core.search._kernels`.

Imported only where a batch needs it: numba's import costs ~0.3 s, worth it for batches, not one query.
The loops release the GIL, so they run on one thread per core; the threads live as long as one scan.
Plain queries split each chunk's queries over the threads. A shared basis (analogies) gives each thread
whole chunks instead, products included, with BLAS on one thread (see :func:`_scan_basis`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from core._threads import one_blas_thread
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

    n_out = plan.n_out
    ex = exclude if exclude is not None else np.empty((n_out, 0), dtype=np.int64)
    if plan.terms is not None:
        return _scan_basis(pool, ops, plan, k, ex, n_scan, blocked, report, what)
    block_rows = _engine._BLOCK_ROWS
    best_s, best_i = _empty_best(n_out, k)
    none_blocked = np.empty(0, dtype=np.bool_)
    chunk = _engine.chunk_rows(n_scan, max(1, min(n_out, block_rows)), ops.vectors.shape[1])
    n_blocks = -(-n_out // block_rows)
    steps = n_blocks * -(-n_scan // chunk)
    for ci, c0 in enumerate(range(0, n_scan, chunk)):
        c1 = min(n_scan, c0 + chunk)
        rows = ops.rows(c0, c1)
        blk = np.ascontiguousarray(blocked[c0:c1]) if blocked is not None else none_blocked
        for bi, b0 in enumerate(range(0, n_out, block_rows)):
            report((ci * n_blocks + bi) / steps, what)
            b1 = min(n_out, b0 + block_rows)
            s = _engine.query_scores(ops, plan, rows, b0, b1, c0, c1, what)

            def keep(a: int, b: int, s: np.ndarray = s, b0: int = b0, blk: np.ndarray = blk, c0: int = c0) -> None:
                kn.keep_best(s[a:b], b0 + a, c0, blk, ex, best_s, best_i)

            _on_threads(pool, b1 - b0, keep)
    return best_s, best_i


def _empty_best(n_out: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_out, k), -np.inf, dtype=np.float32), np.full((n_out, k), -1, dtype=np.int64)


def _scan_basis(pool: ThreadPoolExecutor | None, ops: NumpyOps, plan: _engine.Plan, k: int, ex: np.ndarray,
                n_scan: int, blocked: np.ndarray | None, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The scan of a shared basis: each thread takes every ``workers``-th chunk through the whole pipeline.

    A thread makes its chunk's basis products (BLAS on one thread), scales them and combines them into its
    own best lists, which are merged at the end (ties still go to the lower id). The chunks' products are
    small; made by threaded BLAS between the combining loops they left BLAS threads spinning on the cores
    the loops needed (0.83 s instead of 0.50 s for the loops of an analogy set on 2 cores).
    """
    from core.search import _kernels as kn

    n_out = plan.n_out
    basis = ops.put(plan.basis)
    terms = np.ascontiguousarray(plan.terms, dtype=np.int64)
    weights = (np.ascontiguousarray(plan.weights, dtype=np.float32) if plan.weights is not None
               else np.ones(terms.shape, dtype=np.float32))
    mode = {"cosmul": kn.MODE_COSMUL, "euclidean": kn.MODE_EUCLIDEAN}.get(plan.mode, kn.MODE_SUM)
    no_sq = np.empty(0, dtype=np.float32)
    none_blocked = np.empty(0, dtype=np.bool_)
    workers = 1 if pool is None else max(1, min(os.cpu_count() or 1, -(-n_scan // _CHUNK)))
    # Each thread holds one chunk's products: together within the engine's score budget for a large basis.
    chunk = max(64, min(_CHUNK, _engine._SCORE_ELEMS // (workers * basis.shape[0])))
    starts = list(range(0, n_scan, chunk))
    lists = [_empty_best(n_out, k) for _ in range(workers)]
    stop = threading.Event()
    done = [0] * workers  # chunks finished, per thread

    def work(w: int, after_chunk: Callable[[], None] | None = None) -> None:
        best_s, best_i = lists[w]
        for c0 in starts[w::workers]:
            if stop.is_set():
                return
            c1 = min(n_scan, c0 + chunk)
            f = ops.matmul(basis, ops.rows(c0, c1))
            _engine.scale_products(ops, plan, f, c0, c1)
            sq = ops.sqnorms(c0, c1) if plan.mode == "euclidean" else no_sq
            blk = np.ascontiguousarray(blocked[c0:c1]) if blocked is not None else none_blocked
            kn.combine_keep_best(f, terms, weights, mode, plan.n_pos, sq, 0, n_out, c0, blk, ex, best_s, best_i)
            done[w] += 1
            if after_chunk is not None:
                after_chunk()

    report(0.0, what)
    with one_blas_thread():
        if pool is None:
            work(0, lambda: report(done[0] / len(starts), what))
        else:
            futures = [pool.submit(work, w) for w in range(workers)]
            try:
                while wait(futures, timeout=0.1).not_done:
                    report(sum(done) / len(starts), what)
            finally:
                stop.set()
                for fut in futures:
                    fut.result()
    if workers == 1:
        return lists[0]
    s = np.concatenate([b[0] for b in lists], axis=1)
    i = np.concatenate([b[1] for b in lists], axis=1)
    order = _engine.rank_order(i, -s)[:, :k]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)
