"""BLAS on one thread while a job runs its own threads.

OpenBLAS's threads spin for a while after each product, waiting for the next one. A job that runs compiled
loops on every core between small products (the search's analogy scan) would share its cores with those
spinning threads: on 2 cores the analogy loop took 0.83 s instead of 0.50 s. Jobs like that make their
products on one BLAS thread each, from their own threads, inside :func:`one_blas_thread`.

The cap is process-wide (OpenBLAS has one thread count), so overlapping jobs of one server share it: it is
set when the first starts and lifted when the last ends, whichever thread that is. OpenBLAS ignores the
calls of other threads once the process's main thread has set a count, so a process should set it from
the main thread only (the CLI) or from other threads only (the dashboard's sessions), as ours do.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

# threadpoolctl's limit is process-wide. Overlapping jobs (two sessions of one server) share one limit,
# counted, so that the first to finish cannot lift it under the other, nor the last leave it set.
_lock = threading.Lock()
_holders = 0
_limit: Any = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Cap BLAS at one thread for the duration (nested and concurrent uses share one cap)."""
    global _holders, _limit
    with _lock:
        if _holders == 0:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - a declared dependency
                _limit = None
            else:
                _limit = threadpool_limits(1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _limit is not None:
                _limit.restore_original_limits()
                _limit = None
