"""Finished projections on disk, and the jobs that compute each of them once per server.

A UMAP of every row of a 262k-token vocabulary takes minutes, so it should run once per server, not once per
session or restart. :class:`ProjectionStore` keeps finished projections in a cache folder (``EMBEDSCOPE_CACHE``,
else the user's cache directory), one file per (matrix fingerprint, selection, parameters), written atomically.
:class:`ProjectionJobs` runs a missing one on a background thread with progress and cancel; whoever asks for
the same file while it runs gets the same job and waits for it. A cancelled or failed job leaves nothing.

    >>> from core.projection import ProjectionJobs, ProjectionStore
    >>> jobs = ProjectionJobs(ProjectionStore())      # one per process (the dashboard holds it)
    >>> job = jobs.start(m, selection, ProjectionConfig(method="umap"))
    >>> job.wait(); job.result().caption              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import Cancelled
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn
from core.projection._config import Projection, ProjectionConfig
from core.projection._methods import _is_whole, check_memory, project
from core.projection._selection import Selection

#: The environment setting that names the server's cache folder.
CACHE_ENV = "EMBEDSCOPE_CACHE"
#: Bumped when the file layout changes, so that old files are ignored rather than misread.
_FORMAT = "1"

JobState = Literal["running", "done", "failed", "cancelled"]


def cache_root() -> Path:
    """The server's cache folder: ``EMBEDSCOPE_CACHE``, else ``$XDG_CACHE_HOME/embedscope``, else
    ``~/.cache/embedscope``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "embedscope"


class ProjectionStore:
    """Finished projections as ``.npz`` files under ``root/projections``, keyed by content, never by session.

    Args:
        root: the cache folder; :func:`cache_root` when None.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(root if root is not None else cache_root()) / "projections"

    def path(self, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig) -> Path:
        """The file of this projection: a digest of the matrix's fingerprint and both configs."""
        h = hashlib.blake2b(digest_size=16)
        for part in (_FORMAT, m.fingerprint, repr(selection.config), repr(config)):
            h.update(part.encode("utf-8") + b"\0")
        return self.folder / f"{config.method}-{h.hexdigest()}.npz"

    def load(self, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig) -> Projection | None:
        """The stored projection, or None when there is none (or the file is unreadable or for other rows)."""
        return self._read(self.path(m, selection, config), selection, config)

    def _read(self, path: Path, selection: Selection, config: ProjectionConfig) -> Projection | None:
        try:
            with np.load(path, allow_pickle=False) as f:
                coords = np.ascontiguousarray(f["coords"], dtype=np.float32)
                rows = f["rows"]
                titles = tuple(str(t) for t in f["axis_titles"])
                notes = tuple(str(t) for t in f["notes"])
                explained = f["explained"] if f["explained"].size else None
                pre_var, pre_dims, seconds = (float(v) for v in f["numbers"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        # A file whose rows are not this selection's (a sampling that changed) is not this projection.
        if not np.array_equal(rows, selection.indices) or coords.shape != (len(selection), config.dims):
            return None
        coords.setflags(write=False)
        if explained is not None:
            explained = np.asarray(explained, dtype=np.float64)
            explained.setflags(write=False)
        return Projection(coords, selection, config, titles, explained,
                          None if np.isnan(pre_var) else pre_var, None if pre_dims < 0 else int(pre_dims), seconds,
                          (*notes, "computed earlier on this server and read from its cache"))

    def save(self, m: EmbeddingMatrix, projection: Projection) -> Path:
        """Write ``projection`` atomically (a temporary file in the same folder, then a rename)."""
        path = self.path(m, projection.selection, projection.config)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, coords=projection.coords, rows=projection.selection.indices,
                         axis_titles=np.asarray(projection.axis_titles, dtype=str),
                         notes=np.asarray(projection.notes, dtype=str),
                         explained=(projection.explained_variance if projection.explained_variance is not None
                                    else np.zeros(0)),
                         numbers=np.asarray([np.nan if projection.pre_pca_variance is None
                                             else projection.pre_pca_variance,
                                             -1 if projection.pre_pca_dims is None else projection.pre_pca_dims,
                                             projection.seconds], dtype=np.float64))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (two server workers asking for the same projection);
    a no-op where the system has no ``fcntl``."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class Job:
    """One projection being computed on a background thread; shared by every session that asked for it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fraction = 0.0
        self.message = "waiting to start"
        self.state: JobState = "running"
        self.error: BaseException | None = None
        self._result: Projection | None = None
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._waiters: set[str] = set()
        self._listeners: list[ProgressFn] = []
        self._lock = threading.Lock()

    def join(self, waiter: str, progress: ProgressFn | None = None) -> None:
        """Count ``waiter`` among those waiting, so that its leaving alone does not stop the others' job;
        ``progress`` is then told of each step, on the job's thread."""
        with self._lock:
            self._waiters.add(waiter)
            if progress is not None:
                self._listeners.append(progress)

    def progress(self, fraction: float, message: str) -> None:
        """The job's progress callback: kept for pages that poll, and passed to whoever listens."""
        self.fraction, self.message = fraction, message
        for listener in list(self._listeners):
            listener(fraction, message)

    def cancelled(self) -> bool:
        """The job's cancel check (also true once every waiter has left)."""
        return self._cancel.is_set()

    def cancel(self, waiter: str | None = None) -> bool:
        """Stop waiting; the job stops when nobody waits any more (or at once when ``waiter`` is None).

        Returns:
            True when the job was told to stop, False when other sessions still wait for it.
        """
        with self._lock:
            if waiter is not None:
                self._waiters.discard(waiter)
                if self._waiters:
                    return False
            self._cancel.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or ``timeout`` seconds pass); True when it has ended."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Projection:
        """The finished projection.

        Raises:
            Cancelled: the job was cancelled.
            Exception: the job failed: the error it raised (an ``EmbedscopeError`` for bad input).
        """
        self._done.wait()
        if self._result is not None:
            return self._result
        if self.state == "cancelled" or self.error is None:
            raise Cancelled("the projection was cancelled before it finished; nothing was kept")
        raise self.error

    def _finish(self, state: JobState, result: Projection | None = None, error: BaseException | None = None) -> None:
        self.state, self._result, self.error = state, result, error
        if result is not None:
            self.fraction, self.message = 1.0, "done"
        self._done.set()


class ProjectionJobs:
    """Computes each projection at most once per server: a registry of running jobs keyed by their cache file.

    Hold one per process (the dashboard keeps it in ``st.cache_resource``); no module-level state here.
    """

    def __init__(self, store: ProjectionStore) -> None:
        self.store = store
        self._running: dict[Path, Job] = {}
        self._lock = threading.Lock()

    def cached(self, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig) -> Projection | None:
        """The finished projection from the cache folder, or None."""
        return self.store.load(m, selection, config)

    def running(self, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig) -> Job | None:
        """The job computing this projection now, if any (one told to stop is no longer counted)."""
        with self._lock:
            job = self._running.get(self.store.path(m, selection, config))
            return None if job is None or job.cancelled() else job

    def start(self, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig,
              waiter: str = "", progress: ProgressFn | None = None) -> Job:
        """The job for this projection: finished at once when cached, the running one when another session
        started it, else a new one on a background thread.

        Args:
            waiter: names the caller for :meth:`Job.cancel` (a session id).
            progress: told of each step, on the job's thread (a CLI bar; pages poll ``Job.fraction`` instead).

        Raises:
            ParameterError: the config does not fit the selection, or the machine cannot hold the projection
                (checked here, before any thread starts).
        """
        config.validate(len(selection), m.dim)
        path = self.store.path(m, selection, config)
        with self._lock:
            job = self._running.get(path)
            if job is not None and not job.cancelled():
                job.join(waiter, progress)
                return job
            job = Job(path)
            job.join(waiter, progress)
            hit = self.store._read(path, selection, config)
            if hit is not None:
                job._finish("done", hit)
                return job
            check_memory(len(selection), m.dim, config, whole=_is_whole(m, selection))
            self._running[path] = job
        thread = threading.Thread(target=self._run, args=(job, m, selection, config), daemon=True,
                                  name=f"embedscope-projection-{config.method}")
        thread.start()
        return job

    def _run(self, job: Job, m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig) -> None:
        try:
            with _file_lock(job.path.with_suffix(".lock")):
                # Another process may have finished it while this one waited for the lock.
                result = self.store._read(job.path, selection, config)
                if result is None:
                    result = project(m, selection, config, progress=job.progress, cancel=job.cancelled)
                    self.store.save(m, result)
            job._finish("done", result)
        except Cancelled as err:
            job._finish("cancelled", error=err)
        except Exception as err:  # a thread's error must reach whoever waits, not vanish in a log
            job._finish("failed", error=err)
        finally:
            with self._lock:
                if self._running.get(job.path) is job:
                    del self._running[job.path]


__all__ = ["CACHE_ENV", "Job", "ProjectionJobs", "ProjectionStore", "cache_root"]
