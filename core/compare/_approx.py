"""Approximate neighbours of every compared token, for vocabularies too large for the exact search.

Jaccard@k needs the k nearest neighbours of every compared row among the compared rows: a self-join whose
exact cost grows with the square of the vocabulary (262,144 rows × 640 dimensions: 8.8·10¹³ multiply-adds
per matrix, about an hour on two cores). Here pynndescent's NN-descent (the k-nearest-neighbour graph UMAP
builds, installed with umap-learn) builds that graph directly, seeded. Recall@k against the exact search is
measured by a ``slow`` test and by bench/bench_compare.py; every comparison that used it says so.

NN-descent runs in a child process (:mod:`core.compare._nndescent`): its numba code, compiled at first use,
stays in memory as long as the process that compiled it, and a dashboard server lives long. The rows go to the
child through a ``.npy`` file in a private temporary folder and the graph comes back the same way; the child's
progress lines become progress reports, and a cancel stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

import numpy as np

from core.compare import _nndescent
from core.compare._common import _readonly, positions_dtype
from core.errors import EmbedscopeError, ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

#: Searches that :func:`core.compare.compare` accepts: exact, approximate, or chosen by size.
SEARCHES: tuple[str, ...] = ("auto", "exact", "approximate")
#: "auto" searches exactly while rows² × dimensions stays at or below this (50,000 rows of 640 dimensions,
#: about a minute per matrix on two cores), and approximately past it.
EXACT_MAX_WORK = 50_000 * 50_000 * 640
#: Graph neighbours NN-descent keeps per row, at least (more than k makes its answer closer to exact).
MIN_GRAPH_NEIGHBORS = 30


def choose_search(search: str, rows: int, dim: int, device: str) -> str:
    """"exact" or "approximate" for ``search`` ("auto" decides by size: exact where it is fast enough).

    Raises:
        ParameterError: an unknown search.
    """
    if search not in SEARCHES:
        raise ParameterError(f"search={search!r}: must be one of {', '.join(SEARCHES)}")
    if search != "auto":
        return search
    if rows * rows * dim <= EXACT_MAX_WORK:
        return "exact"
    from core.search import resolve_device

    # A GPU runs the exact search of even the largest vocabularies in seconds.
    return "exact" if resolve_device(device) != "cpu" else "approximate"


def approximate_neighbors(m: EmbeddingMatrix, rows: np.ndarray, k: int, *, seed: int = 0,
                          progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                          worker: NNDescentWorker | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each compared row's k nearest compared rows by cosine (itself left out), approximately.

    Args:
        m: the matrix; rows: the compared rows (k < rows.size).
        seed: NN-descent's random state.
        worker: the child process that builds the graph (one of its own when None).

    Returns:
        (positions into ``rows``, cosines), read-only, (rows.size × k), best first; -1 / NaN where the graph
        holds fewer than k others for a row.
    """
    report = Reporter(progress, cancel)
    report(0.0, "approximate neighbours: building the graph")
    n = int(rows.size)
    with tempfile.TemporaryDirectory(prefix="embedscope-nndescent-") as tmp:
        source, out = Path(tmp) / "rows.npy", Path(tmp) / "graph.npz"
        x = np.lib.format.open_memmap(source, mode="w+", dtype=np.float32, shape=(n, m.dim))
        step = max(1, (1 << 24) // max(1, m.dim))
        for s in range(0, n, step):
            chunk = np.asarray(m.vectors[rows[s:s + step]], dtype=np.float32)
            # NN-descent cannot rank NaN or infinite rows; as zero rows they are nobody's near neighbour, as in
            # the exact search, which never returns them.
            chunk[~np.isfinite(chunk).all(axis=1)] = 0.0
            x[s:s + step] = chunk
        x.flush()
        del x
        graph_k = min(n - 1, max(MIN_GRAPH_NEIGHBORS, k + 1))
        with worker_for(worker) as builder:
            builder.build(source, out, graph_k, seed, report)
        report(0.9, "approximate neighbours: reading the graph")
        with np.load(out) as graph:
            found, dist = graph["found"], graph["dist"]
    ids = np.full((n, k), -1, dtype=positions_dtype(n))
    scores = np.full((n, k), np.nan, dtype=np.float32)
    # A row is usually its own first neighbour, but a duplicate row may come first: drop the row itself
    # wherever it is, then keep the k best others (the graph lists them best first).
    others = (found != np.arange(n)[:, None]) & (found >= 0)
    rank = np.cumsum(others, axis=1) - 1
    keep = others & (rank < k)
    r, c = np.nonzero(keep)
    ids[r, rank[r, c]] = found[r, c]
    scores[r, rank[r, c]] = 1.0 - dist[r, c]
    report(1.0, "approximate neighbours")
    return _readonly(ids), _readonly(scores)


#: The folder that holds the ``core`` package, for the child's import path.
_CORE_PARENT = str(Path(__file__).resolve().parents[2])
#: NN-descent's progress line for one iteration ("\t 3  /  18").
_ITERATION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class NNDescentWorker:
    """A child process (:mod:`core.compare._nndescent`) that builds NN-descent graphs, one after another.

    One comparison builds A's and B's graphs in one worker, so NN-descent's compile is paid once; when the
    worker closes, the child exits and its memory goes with it. The child starts at the first :meth:`build`,
    so a worker no graph is asked of costs nothing. A context manager; a cancel kills the child.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=20)

    def __enter__(self) -> NNDescentWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[str]:
        if self._child is None:
            # The child imports ``core`` from where this process found it, whatever its working folder.
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_CORE_PARENT, env.get("PYTHONPATH")) if p)
            self._child = subprocess.Popen([sys.executable, "-m", "core.compare._nndescent"], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            # A queue per child: a killed child's last word never reaches the next one's reader.
            self._lines = queue.Queue()
            threading.Thread(target=self._read, args=(self._child, self._lines), name="embedscope-nndescent-output",
                             daemon=True).start()
        return self._child

    @staticmethod
    def _read(child: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line.rstrip())
        lines.put(None)  # the child has closed its output: it exited

    def build(self, source: Path, out: Path, graph_k: int, seed: int, report: Reporter) -> None:
        """The graph of the rows in ``source`` (.npy) into ``out`` (.npz), reporting progress (0.05 to 0.85).

        Raises:
            Cancelled: through ``report`` (the child is stopped). EmbedscopeError: the child failed.
        """
        child = self._start()
        assert child.stdin is not None
        try:
            child.stdin.write(json.dumps({"source": str(source), "out": str(out), "graph_k": graph_k,
                                          "seed": seed}) + "\n")
            child.stdin.flush()
            fraction = 0.05
            while True:
                report(fraction, "approximate neighbours: building the graph")  # raises Cancelled when cancelled
                try:
                    line = self._lines.get(timeout=0.25)
                except queue.Empty:
                    continue
                if line is None:
                    raise self._failed()
                if line == _nndescent.DONE:
                    return
                self._tail.append(line)
                step = _ITERATION.match(line)
                if step:
                    fraction = 0.05 + 0.8 * int(step.group(1)) / max(1, int(step.group(2)))
        except BrokenPipeError:
            raise self._failed() from None
        except BaseException:
            self.close(kill=True)
            raise

    def _failed(self) -> EmbedscopeError:
        code = self._child.wait() if self._child is not None else None
        said = "\n".join(self._tail)[-1500:]
        return EmbedscopeError(f"NN-descent (the approximate neighbour search) stopped with exit code {code}: "
                               f"{said}")

    def close(self, kill: bool = False) -> None:
        """End the child: at the end of its input, or at once with ``kill``."""
        child, self._child = self._child, None
        if child is None:
            return
        if kill:
            child.kill()
        elif child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a child that does not exit at the end of its input
            child.kill()
            child.wait()


def worker_for(worker: NNDescentWorker | None) -> contextlib.AbstractContextManager[NNDescentWorker]:
    """``worker`` as it is (whoever made it closes it), or a new worker closed at the end of the block."""
    return contextlib.nullcontext(worker) if worker is not None else NNDescentWorker()


__all__ = ["EXACT_MAX_WORK", "SEARCHES", "NNDescentWorker", "approximate_neighbors", "choose_search", "worker_for"]
