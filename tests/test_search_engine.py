"""The two CPU speed-ups of the neighbour search, each against an independent float64 oracle.

- The int8 first pass (``core.search._int8``), attached only by ``SearchIndex.prepare``: its error bound
  must hold on every row of MiniLM, a search through it must return the exact search's answer, with
  filters, ``restrict`` and exclusions, and no answer may depend on how many queries ran before it.
- The compiled loops (``core.search._kernels``): batches, shared-basis sums (3CosAdd, euclidean) and 3CosMul must
  keep the same best rows as brute-force numpy in float64, with ties going to the lower row id.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import core
from core import search
from core.search import Filters, _int8


def _fbgemm() -> bool:
    import torch

    return torch.backends.quantized.engine in _int8.ENGINES


needs_fbgemm = pytest.mark.skipif(not _fbgemm(), reason="torch's int8 engine here is not FBGEMM")


def _unit64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, np.inf)


def _oracle(m: core.EmbeddingMatrix, q: np.ndarray, k: int, exclude: list[int] = (), restrict: int | None = None,
            mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of every row in float64 (-inf where a row may not be returned)."""
    s = _unit64(np.asarray(m.vectors)) @ _unit64(q)
    s[list(exclude)] = -np.inf
    if restrict is not None:
        s[restrict:] = -np.inf
    if mask is not None:
        s[~mask] = -np.inf
    return s


def _same(ids: np.ndarray, scores: np.ndarray, s: np.ndarray) -> None:
    """The oracle's top rows, best first and ties to the lower id, except swaps between scores closer than
    float32 can tell apart; scores within 1e-5."""
    ref = np.lexsort((np.arange(len(s)), -s))[:len(ids)]
    np.testing.assert_allclose(scores, s[ref], atol=1e-5)
    for got, want in zip(ids, ref, strict=True):
        assert got == want or abs(s[got] - s[want]) < 1e-6, (ids, ref)


# ------------------------------------------------------------------------------------------------
# the int8 first pass
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def index(demo: core.EmbeddingMatrix) -> _int8.Int8Index:
    if not _fbgemm():
        pytest.skip("torch's int8 engine here is not FBGEMM")
    built = _int8.Int8Index.build(demo.vectors, demo.norms)
    assert built is not None, "FBGEMM's kernel did not keep the bound on MiniLM"
    return built


def _queries(m: core.EmbeddingMatrix, n: int, seed: int = 0) -> list[np.ndarray]:
    """Rows of the matrix, means of a few rows (formulas) and random directions, as unit float32."""
    rng = np.random.default_rng(seed)
    v = np.asarray(m.vectors)
    out = [v[i] for i in rng.choice(len(m), n, replace=False)]
    out += [v[rng.choice(len(m), 3)].sum(axis=0) for _ in range(n // 4)]
    out += [rng.standard_normal(m.dim) for _ in range(n // 4)]
    return [(_unit64(q)).astype(np.float32) for q in out]


def test_error_bound_holds_on_every_row(demo: core.EmbeddingMatrix, index: _int8.Int8Index) -> None:
    exact_rows = _unit64(np.asarray(demo.vectors))
    widths = []
    for q in _queries(demo, 24):
        est = index.estimate(q)
        y = est.y[:len(demo)]
        bound = est.qn * index.resid + est.a * index.wnorm + np.abs(y) * 2.0 ** -20 + est.const
        err = np.abs(exact_rows @ q.astype(np.float64) - y)
        assert (err <= bound).all(), float((err - bound).max())
        widths.append(float(np.median(bound)))
    # A bound this loose would still be exact, but would leave hundreds of rows to rescore.
    assert max(widths) < 0.05, widths


def test_candidates_hold_the_exact_top_k(demo: core.EmbeddingMatrix, index: _int8.Int8Index) -> None:
    sizes = []
    for k in (1, 10, 50):
        for q in _queries(demo, 12, seed=k):
            found = index.candidates(q[None], k, len(demo))
            if found is None:  # too many rows in doubt (a random direction): the exact scan answers
                sizes.append(len(demo))
                continue
            s = _oracle(demo, q, k)
            assert set(np.argsort(-s)[:k]) <= set(found[0])
            sizes.append(found[0].size)
    assert np.median(sizes) < 200, sizes


@needs_fbgemm
def test_prepared_first_pass_is_exact(demo_dir: object) -> None:
    m = core.load(demo_dir)  # a matrix of its own: no other test attached its first pass
    for word in ("king", "paris", "queen"):
        search.neighbors(m, word)
    assert m.search_index.first_pass is None  # never built behind the caller's back
    assert m.search_index.prepare() and m.search_index.first_pass is not None
    assert m.search_index.prepare()  # idempotent
    first = search.neighbors(m, "paris", k=10)
    rng = np.random.default_rng(3)
    mask = search.candidate_mask(m, Filters(hide_special=True, hide_subwords=True))
    for trial, i in enumerate(rng.choice(len(m), 60, replace=False)):
        k = (1, 5, 10, 40)[trial % 4]
        restrict = 20_000 if trial % 3 == 0 else None
        use_mask = mask if trial % 2 else None
        q = np.asarray(m.vectors[i])
        ids, scores = search.knn(m, q, k, exclude=[[i]], restrict=restrict, mask=use_mask)
        _same(ids[0], scores[0], _oracle(m, q, k, [i], restrict, use_mask))
    _same(np.array([n.id for n in first.neighbors]), np.array([n.score for n in first.neighbors]),
          _oracle(m, search.resolve_query(m, "paris").vector(), 10, [m.get_index("paris")]))


def test_answers_do_not_depend_on_earlier_queries_or_prepare(demo_dir: object) -> None:
    """The same query gives the same ids and scores, bit for bit, as a matrix's first query, as its 50th, and
    after ``prepare`` (where FBGEMM is there to attach the first pass); each is the float64 oracle's."""
    queries = ["paris", "king - man + woman", "unbelievably", "running", "blue"]
    fresh = core.load(demo_dir)
    first = [search.neighbors(fresh, q, k=10) for q in queries[:1]]
    fresh_vec = search.knn(fresh, np.asarray(fresh.vectors[4321]), 7, exclude=[[4321]])
    m = core.load(demo_dir)
    for word in m.index_to_key[2000:2049]:  # 49 queries before
        search.neighbors(m, word, k=5)
    later = [search.neighbors(m, q, k=10) for q in queries]
    later_vec = search.knn(m, np.asarray(m.vectors[4321]), 7, exclude=[[4321]])
    prepared = m.search_index.prepare()
    assert prepared == _fbgemm()
    after = [search.neighbors(m, q, k=10) for q in queries]
    after_vec = search.knn(m, np.asarray(m.vectors[4321]), 7, exclude=[[4321]])

    assert first[0].neighbors == later[0].neighbors == after[0].neighbors
    assert later == after or [r.neighbors for r in later] == [r.neighbors for r in after]
    for ids, scores in (later_vec, after_vec):
        np.testing.assert_array_equal(ids, fresh_vec[0])
        np.testing.assert_array_equal(scores, fresh_vec[1])
    _same(fresh_vec[0][0], fresh_vec[1][0], _oracle(m, np.asarray(m.vectors[4321]), 7, [4321]))
    for q, res in zip(queries, after, strict=True):
        parsed = search.resolve_query(m, q)
        _same(np.array([n.id for n in res.neighbors]), np.array([n.score for n in res.neighbors]),
              _oracle(m, parsed.vector(), 10, list(parsed.exclude)))


@needs_fbgemm
def test_large_k_nan_rows_and_small_matrices_scan_in_float32() -> None:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((6000, 48)).astype(np.float32)
    m = core.EmbeddingMatrix(vecs, [f"t{i}" for i in range(len(vecs))])
    assert m.search_index.prepare()
    # More rows in doubt than the first pass takes (k alone is past it): the exact scan answers, the same way.
    ids, scores = search.knn(m, vecs[1], 1000, exclude=[[1]])
    _same(ids[0], scores[0], _oracle(m, vecs[1], 1000, [1]))
    # A zero query scores 0 with every row: all rows are in doubt, and the exact scan answers.
    ids, scores = search.knn(m, np.zeros(48, dtype=np.float32), 3)
    np.testing.assert_array_equal(ids[0], [0, 1, 2])
    assert (scores == 0).all()

    with_nan = vecs.copy()
    with_nan[3] = np.nan
    n = core.EmbeddingMatrix(with_nan, m.index_to_key)
    assert not n.search_index.prepare()
    for _ in range(3):
        ids, _ = search.knn(n, vecs[4], 5)
        assert 3 not in ids[0]
    assert n.search_index.first_pass is None

    small = core.EmbeddingMatrix(vecs[:_int8.MIN_ROWS - 1], m.index_to_key[:_int8.MIN_ROWS - 1])
    assert not small.search_index.prepare()
    ids, scores = search.knn(small, vecs[0], 5, exclude=[[0]])
    _same(ids[0], scores[0], _oracle(small, vecs[0], 5, [0]))


def test_grid_query_is_exact_on_the_kernels_grid() -> None:
    rng = np.random.default_rng(2)
    for _ in range(50):
        q = rng.standard_normal(int(rng.integers(2, 500))).astype(np.float32) * np.float32(rng.uniform(1e-3, 10))
        x = _int8.grid_query(q)
        lo, hi = float(x[-2]), float(x[-1])
        step = (hi - lo) / 127
        levels = (x - lo) / step
        np.testing.assert_array_equal(levels, np.rint(levels))  # every value is a level of the grid
        assert levels.min() >= 0 and levels.max() <= 127
        assert np.abs(q - x[:-2]).max() <= step / 2 * (1 + 1e-6)


# ------------------------------------------------------------------------------------------------
# the compiled loops
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tied() -> core.EmbeddingMatrix:
    """Random rows where every row 0..99 appears again at 100..199 (exact ties), then more rows."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((100, 24)).astype(np.float32)
    vecs = np.concatenate([base, base, rng.standard_normal((800, 24)).astype(np.float32)])
    return core.EmbeddingMatrix(vecs, [f"t{i}" for i in range(len(vecs))])


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_batches_keep_the_best_rows_and_lower_ids_on_ties(tied: core.EmbeddingMatrix, metric: str) -> None:
    v = np.asarray(tied.vectors, dtype=np.float64)
    queries = v[300:340] + 0.05
    ids, scores = search.knn(tied, queries, k=8, metric=metric, exclude=np.arange(300, 340))
    if metric == "cosine":
        s = _unit64(queries) @ _unit64(v).T
    elif metric == "dot":
        s = queries @ v.T
    else:
        s = -np.linalg.norm(queries[:, None, :] - v[None, :, :], axis=2)
    s[np.arange(40), np.arange(300, 340)] = -np.inf
    sign = -1.0 if metric == "euclidean" else 1.0  # euclidean scores are distances
    for qi in range(40):
        order = np.lexsort((np.arange(len(v)), -s[qi]))[:8]
        np.testing.assert_array_equal(ids[qi], order)
        np.testing.assert_allclose(scores[qi], sign * s[qi, order], rtol=1e-5, atol=1e-5)
    # Row 0 and its twin 100 score the same for every query: the lower id always comes first.
    twin_ids, _ = search.knn(tied, v[:20] + 0.01, k=2, metric=metric)
    np.testing.assert_array_equal(twin_ids, np.stack([np.arange(20), np.arange(100, 120)], axis=1))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_sums_of_a_shared_basis(tied: core.EmbeddingMatrix, metric: str) -> None:
    rng = np.random.default_rng(6)
    v = np.asarray(tied.vectors, dtype=np.float64)
    basis = v[rng.choice(len(v), 30, replace=False)]
    terms = rng.integers(0, 30, (50, 3))
    weights = rng.choice([1.0, -1.0, 0.5], (50, 3))
    ids, scores = search.knn_of_sums(tied, basis, terms, weights, k=6, metric=metric)
    q = np.einsum("qt,qtd->qd", weights, basis[terms])
    s = _unit64(q) @ _unit64(v).T if metric == "cosine" else -np.linalg.norm(q[:, None, :] - v[None, :, :], axis=2)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(ids, ref)
    sign = 1.0 if metric == "cosine" else -1.0  # euclidean scores are distances
    np.testing.assert_allclose(scores, sign * np.take_along_axis(s, ref, axis=1), rtol=1e-4, atol=1e-5)


def test_analogy_sums_skip_excluded_and_masked_rows_and_keep_ties_to_the_lower_id(
        tied: core.EmbeddingMatrix) -> None:
    """3CosAdd's +1, +1, −1 (the one-pass loop of analogies) against float64 numpy: excluded question words,
    masked rows, the twins 0..99 / 100..199 (ties go to the lower id), columns past the last run of 64."""
    rng = np.random.default_rng(8)
    v = np.asarray(tied.vectors, dtype=np.float64)
    words = rng.choice(len(v), 30, replace=False)
    basis = v[words]
    terms = rng.integers(0, 30, (60, 3))
    weights = np.tile([1.0, 1.0, -1.0], (60, 1))
    exclude = words[terms]
    mask = rng.random(len(v)) > 0.1
    ids, scores = search.knn_of_sums(tied, _unit64(basis), terms, weights, k=7, exclude=exclude, mask=mask)
    q = np.einsum("qt,qtd->qd", weights, _unit64(basis)[terms])
    s = _unit64(q) @ _unit64(v).T
    s[:, ~mask] = -np.inf
    s[np.arange(60)[:, None], exclude] = -np.inf
    for qi in range(60):
        order = np.lexsort((np.arange(len(v)), -s[qi]))[:7]
        np.testing.assert_array_equal(ids[qi], order)
        np.testing.assert_allclose(scores[qi], s[qi, order], rtol=1e-5, atol=1e-5)
    twins = np.stack([np.arange(20), np.arange(100, 120)], axis=1)  # b = c = a row, a = an unrelated row
    ids, _ = search.knn_of_sums(tied, np.concatenate([_unit64(v[:20]), _unit64(v[500:501])]),
                                np.stack([np.arange(20), np.arange(20), np.full(20, 20)], axis=1),
                                np.tile([1.0, 1.0, -1.0], (20, 1)), k=2)
    np.testing.assert_array_equal(ids, twins)


def test_cosmul_of_a_shared_basis(tied: core.EmbeddingMatrix) -> None:
    rng = np.random.default_rng(7)
    v = np.asarray(tied.vectors, dtype=np.float64)
    basis = v[rng.choice(len(v), 30, replace=False)]
    pos, neg = rng.integers(0, 30, (40, 2)), rng.integers(0, 30, (40, 1))
    ids, scores = search.cosmul_knn(tied, basis, pos, neg, k=5, exclude=np.zeros((40, 0), dtype=int))
    c = (1 + _unit64(basis) @ _unit64(v).T) / 2  # (30 × rows)
    s = c[pos[:, 0]] * c[pos[:, 1]] / (c[neg[:, 0]] + 1e-6)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(s, ref, axis=1), rtol=1e-5)


@pytest.fixture(scope="module")
def chunked() -> core.EmbeddingMatrix:
    """Rows 0..63 again at 4,096.. and 8,192.. (exact ties in three chunks of the compiled scan, which its
    threads take in turns), among 12,500 random rows."""
    rng = np.random.default_rng(11)
    vecs = rng.standard_normal((12_500, 16)).astype(np.float32)
    for start in (4096, 8192):
        vecs[start:start + 64] = vecs[:64]
    return core.EmbeddingMatrix(vecs, [f"c{i}" for i in range(len(vecs))])


@pytest.mark.parametrize("setup", ["threads", "one core", "large basis"])
def test_sums_scanned_by_several_threads_keep_ties_to_the_lowest_id(chunked: core.EmbeddingMatrix, setup: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread keeps its own best rows over its chunks; merged, they are the float64 oracle's, and of
    three equal rows in three chunks the lowest id comes first. Also on one core (no threads), and with a
    basis so large that the chunks shrink to keep its products within the engine's memory budget."""
    from core.search import _compiled

    if setup == "one core":
        monkeypatch.setattr(_compiled.os, "cpu_count", lambda: 1)
    v = np.asarray(chunked.vectors, dtype=np.float64)
    rng = np.random.default_rng(12)
    words = np.concatenate([np.arange(40), rng.choice(np.arange(100, 4000), 20, replace=False)])
    if setup == "large basis":  # 6,060 basis rows: 1,384-column chunks on 2 cores
        words = np.concatenate([words, rng.choice(np.arange(100, 12_500), 6000, replace=False)])
    basis = _unit64(v[words])
    # Questions on one word pair come in a row, as in an analogy file: (b - a) + c.
    terms = np.stack([np.repeat(np.arange(20), 3), np.repeat(np.arange(20, 40), 3), rng.integers(40, 60, 60)], 1)
    weights = np.tile([1.0, -1.0, 1.0], (60, 1))
    ids, scores = search.knn_of_sums(chunked, basis, terms, weights, k=6, exclude=words[terms])
    q = np.einsum("qt,qtd->qd", weights, basis[terms])
    s = _unit64(q) @ _unit64(v).T
    s[np.arange(60)[:, None], words[terms]] = -np.inf
    for qi in range(60):
        order = np.lexsort((np.arange(len(v)), -s[qi]))[:6]
        np.testing.assert_array_equal(ids[qi], order)
        np.testing.assert_allclose(scores[qi], s[qi, order], rtol=1e-5, atol=1e-5)
    # b = c = a row of the first chunk, a = an unrelated row: its three copies, lowest id first.
    twins, _ = search.knn_of_sums(chunked, np.concatenate([_unit64(v[:20]), _unit64(v[5000:5001])]),
                                  np.stack([np.arange(20), np.full(20, 20), np.arange(20)], axis=1),
                                  np.tile([1.0, -1.0, 1.0], (20, 1)), k=3)
    np.testing.assert_array_equal(twins, np.arange(20)[:, None] + np.array([0, 4096, 8192]))


def test_a_cancelled_sum_scan_stops_its_threads_and_gives_blas_back(chunked: core.EmbeddingMatrix,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancel while the threads are in their first chunk (each chunk is slowed to 0.5 s): Cancelled, the
    threads start no further chunk and are gone, and BLAS has the threads it had before (the scan caps it
    at one while its own threads run)."""
    import threading
    import time

    from threadpoolctl import threadpool_info

    from core.errors import Cancelled
    from core.search import _kernels

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    chunks: list[int] = []
    combine = _kernels.combine_keep_best

    def slow(*args: object) -> None:
        chunks.append(1)
        time.sleep(0.5)
        combine(*args)

    monkeypatch.setattr(_kernels, "combine_keep_best", slow)
    v = np.asarray(chunked.vectors, dtype=np.float64)
    basis = _unit64(v[:30])
    terms = np.stack([np.arange(30), np.roll(np.arange(30), 1), np.roll(np.arange(30), 2)], axis=1)
    weights = np.tile([1.0, -1.0, 1.0], (30, 1))
    seen: list[float] = []
    with pytest.raises(Cancelled):
        search.knn_of_sums(chunked, basis, terms, weights, k=5, progress=lambda f, msg: seen.append(f),
                           cancel=lambda: len(seen) > 0)
    n_threads = min(4, len(chunks))
    assert 1 <= len(chunks) <= n_threads < 4  # 4 chunks of 4,096 rows; cancelled before any thread's second
    assert not [t for t in threading.enumerate() if t.name.startswith("embedscope-search")]
    assert blas_threads() == before
    monkeypatch.undo()
    ids, _ = search.knn_of_sums(chunked, basis, terms, weights, k=5)
    assert ids.shape == (30, 5) and blas_threads() == before


_OVERLAP = """
import threading
import numpy as np
from threadpoolctl import threadpool_info
from core._threads import one_blas_thread

def blas():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

before = blas()
first_in, first_out, seen = threading.Event(), threading.Event(), {}

def first():
    with one_blas_thread():
        first_in.set()
        seen["first"] = blas()
        np.ones((300, 300)) @ np.ones((300, 300))

def second():
    first_in.wait()
    with one_blas_thread():
        first_out.wait()
        seen["second, after the first ended"] = blas()

t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
t2.start(); t1.start(); t1.join(); first_out.set(); t2.join()
seen["after both"] = blas()
print(before, seen)
assert all(n == 1 for n in seen["first"]) and all(n == 1 for n in seen["second, after the first ended"])
assert seen["after both"] == before and max(before) > 1
"""


def test_blas_cap_is_lifted_only_when_the_last_overlapping_job_ends() -> None:
    """Two jobs on two session threads of one server, the first ending while the second runs: BLAS stays on
    one thread until both end, then has its threads back. In a fresh process whose main thread never set
    BLAS threads, as on the dashboard's server (OpenBLAS ignores other threads once the main one has)."""
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", _OVERLAP], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_fbgemm
def test_queries_during_prepare_on_another_thread_are_exact() -> None:
    import threading

    rng = np.random.default_rng(8)
    vecs = rng.standard_normal((5000, 32)).astype(np.float32)
    m = core.EmbeddingMatrix(vecs, [f"t{i}" for i in range(len(vecs))])
    worker = threading.Thread(target=search.prepare_search, args=(m,))
    worker.start()
    for i in range(20):  # some before the first pass is attached, some (maybe) after: the same answers
        ids, scores = search.knn(m, vecs[i], 4, exclude=[[i]])
        _same(ids[0], scores[0], _oracle(m, vecs[i], 4, [i]))
    worker.join()
    assert m.search_index.first_pass is not None
    ids, scores = search.knn(m, vecs[9], 4, exclude=[[9]])
    _same(ids[0], scores[0], _oracle(m, vecs[9], 4, [9]))
