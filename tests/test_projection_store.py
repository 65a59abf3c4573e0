"""Projections kept on disk and computed once per server (issue 17): the cache folder, atomic files, one job
shared by two sessions, a cancelled UMAP that leaves nothing, and a request too big for the machine.

Small selections of the real MiniLM matrix only: a UMAP of 262k rows takes minutes (bench/ times it).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import core
from core import projection as pj
from core.errors import Cancelled, ParameterError
from core.projection import ProjectionConfig, SelectionConfig


class _GatedStore(pj.ProjectionStore):
    """A real store whose ``save`` waits for the test's word and counts its calls, so the job is still running
    when a second session asks for it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.saving = threading.Event()
        self.go = threading.Event()
        self.saves = 0

    def save(self, m: core.EmbeddingMatrix, projection: pj.Projection) -> Path:
        self.saves += 1
        self.saving.set()
        assert self.go.wait(60)
        return super().save(m, projection)


@pytest.fixture
def sample(demo: core.EmbeddingMatrix) -> pj.Selection:
    return pj.select(demo, SelectionConfig(sampling="random", sample=600, seed=1))


def test_cache_folder_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(pj.CACHE_ENV, str(tmp_path / "cache"))
    assert pj.cache_root() == tmp_path / "cache"
    assert pj.ProjectionStore().folder == tmp_path / "cache" / "projections"
    monkeypatch.delenv(pj.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pj.cache_root() == tmp_path / "xdg" / "embedscope"


def test_a_stored_projection_reads_back_the_same(demo: core.EmbeddingMatrix, sample: pj.Selection,
                                                 tmp_path: Path) -> None:
    store = pj.ProjectionStore(tmp_path)
    cfg = ProjectionConfig(method="pca", dims=3)
    assert store.load(demo, sample, cfg) is None
    p = pj.project(demo, sample, cfg)
    path = store.save(demo, p)
    assert path.parent == tmp_path / "projections" and path.exists()
    assert [f.name for f in path.parent.iterdir()] == [path.name]  # no temporary file left beside it
    back = store.load(demo, sample, cfg)
    assert back is not None
    np.testing.assert_array_equal(back.coords, p.coords)
    assert not back.coords.flags.writeable
    assert back.caption == p.caption and back.axis_titles == p.axis_titles
    assert back.explained_variance is not None and p.explained_variance is not None
    np.testing.assert_array_equal(back.explained_variance, p.explained_variance)
    # Other parameters, other rows or another matrix are other files.
    assert store.path(demo, sample, ProjectionConfig(method="pca", dims=2)) != path
    other = pj.select(demo, SelectionConfig(sampling="random", sample=600, seed=2))
    assert store.path(demo, other, cfg) != path
    assert store.path(demo.with_vectors(np.asarray(demo.vectors) * 2), sample, cfg) != path
    # A damaged file is a miss, not a crash.
    path.write_bytes(path.read_bytes()[:100])
    assert store.load(demo, sample, cfg) is None


def test_two_sessions_asking_at_once_share_one_computation(demo: core.EmbeddingMatrix, sample: pj.Selection,
                                                           tmp_path: Path) -> None:
    store = _GatedStore(tmp_path)
    jobs = pj.ProjectionJobs(store)
    cfg = ProjectionConfig(method="umap", n_neighbors=10, seed=3)
    first = jobs.start(demo, sample, cfg, waiter="session-1")
    assert store.saving.wait(300), first.error
    second = jobs.start(demo, sample, cfg, waiter="session-2")
    assert second is first and not first.done  # the same running job: both wait for it
    store.go.set()
    a, b = first.result(), second.result()
    assert a is b and store.saves == 1
    # Once done, a third session (or a restarted server) reads the file instead of computing again.
    again = pj.ProjectionJobs(pj.ProjectionStore(tmp_path)).start(demo, sample, cfg, waiter="session-3")
    assert again.done
    np.testing.assert_array_equal(again.result().coords, a.coords)
    assert "read from its cache" in again.result().notes[-1]


def test_a_cancelled_umap_keeps_nothing(demo: core.EmbeddingMatrix, sample: pj.Selection, tmp_path: Path) -> None:
    store = pj.ProjectionStore(tmp_path)
    jobs = pj.ProjectionJobs(store)
    cfg = ProjectionConfig(method="umap", n_neighbors=10, seed=4)
    seen: list[str] = []

    def stop_during_the_layout(fraction: float, message: str) -> None:
        seen.append(message)
        if "epoch" in message:  # half-way: the neighbour graph is built, the layout has begun
            job = jobs.running(demo, sample, cfg)
            assert job is not None
            assert not job.cancel("session-2")  # a session that never asked cannot stop the other's job
            assert job.cancel("session-1")
            assert jobs.running(demo, sample, cfg) is None  # asking again now starts afresh

    job = jobs.start(demo, sample, cfg, waiter="session-1", progress=stop_during_the_layout)
    assert job.wait(300)
    assert job.state == "cancelled"
    with pytest.raises(Cancelled):
        job.result()
    assert any("epoch" in s for s in seen)
    assert "done" not in seen
    assert store.load(demo, sample, cfg) is None
    assert not list(store.folder.glob("*.npz")) and not list(store.folder.glob(".part-*"))
    assert jobs.running(demo, sample, cfg) is None


def test_one_of_two_waiters_leaving_does_not_stop_the_job(demo: core.EmbeddingMatrix, sample: pj.Selection,
                                                          tmp_path: Path) -> None:
    store = _GatedStore(tmp_path)
    jobs = pj.ProjectionJobs(store)
    cfg = ProjectionConfig(method="pca")
    job = jobs.start(demo, sample, cfg, waiter="a")
    assert store.saving.wait(120)
    jobs.start(demo, sample, cfg, waiter="b")
    assert not job.cancel("a")
    store.go.set()
    assert job.result().coords.shape == (600, 2) and job.state == "done"


def test_a_failed_job_says_why_and_keeps_nothing(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    store = pj.ProjectionStore(tmp_path)
    sel = pj.select(demo, SelectionConfig(sampling="first", sample=50))
    with pytest.raises(ParameterError, match="n_neighbors=50"):  # checked before any thread starts
        pj.ProjectionJobs(store).start(demo, sel, ProjectionConfig(method="umap", n_neighbors=50))
    assert not store.folder.exists()


def test_more_points_than_the_machine_holds(demo: core.EmbeddingMatrix) -> None:
    cfg = ProjectionConfig(method="umap")
    need = pj.memory_needed(262_144, 640, cfg)
    # the reduced rows alone are 262,144 × 50 float32, twice; the estimate must cover at least that
    assert need > 262_144 * 50 * 4 * 2
    with pytest.raises(ParameterError, match=r"sample: UMAP of 262,144 points × 640 dimensions needs about "
                                             r"[\d.]+ GiB of memory and this machine has 0\.1 GiB free; choose a "
                                             r"sample of at most about [\d,]+ points"):
        pj.check_memory(262_144, 640, cfg, available=100 * 2**20)
    pj.check_memory(1000, 640, cfg, available=100 * 2**20)
    whole = pj.memory_needed(262_144, 640, ProjectionConfig(), whole=True)
    assert whole < pj.memory_needed(262_144, 640, ProjectionConfig())  # no copy when every row is projected
