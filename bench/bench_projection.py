"""Projections and exports (issue 4): PCA of all of MiniLM, UMAP and t-SNE of 10k points, re-showing a
cached projection in the dashboard, and the word2vec text export against gensim's writer.

Big vocabularies (issue 17), on a seeded 262,144 × 640 matrix (:mod:`bench._bigvocab`): PCA of every row, the
Projection page's first draw (the message the browser gets, and the page run), and, marked slow (set
``EMBEDSCOPE_BENCH_SLOW=1``: minutes on 2 cores), UMAP of every row as the dashboard's background job.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

import core
from bench import _bigvocab
from bench._harness import Result, best_of
from core import export as ex
from core import projection as pj


def _reshow() -> tuple[float, float]:
    """(first show, best re-show) of the Projection page (PCA of every row) under AppTest."""
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    at = AppTest.from_file(app, default_timeout=300)
    at.run()
    t = time.perf_counter()
    at.switch_page("views/projection.py").run()
    first = time.perf_counter() - t
    again = []
    for _ in range(3):
        at.switch_page("views/overview.py").run()
        t = time.perf_counter()
        at.switch_page("views/projection.py").run()
        again.append(time.perf_counter() - t)
    if at.exception:
        raise RuntimeError(f"the Projection page failed: {at.exception}")
    return first, min(again)


#: Set to 1 to run the benches marked slow (UMAP of 262,144 rows).
SLOW_ENV = "EMBEDSCOPE_BENCH_SLOW"


def page_first_draw(npy: Path) -> dict[str, float]:
    """Open ``npy`` (with its vocab.txt) in a dashboard session under AppTest and show the Projection page
    (PCA of every row, drawn point by point). Returns the seconds of the page run that computes it, of a run
    that shows it again from the cache, and the bytes of the chart message."""
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    roots = os.environ.get("EMBEDSCOPE_DATA_ROOTS")
    os.environ["EMBEDSCOPE_DATA_ROOTS"] = str(npy.parent)
    try:
        at = AppTest.from_file(app, default_timeout=600)
        at.run()
        at.text_input(key="open.path").input(str(npy))
        at.text_input(key="open.vocab").input(str(npy.parent / "vocab.txt")).run()
        at.button(key="open.go").click().run()
        at.switch_page("views/lookup.py").run()  # a light page, so that the Overview's statistics are not timed
        t = time.perf_counter()
        at.switch_page("views/projection.py").run()
        first = time.perf_counter() - t
        at.switch_page("views/lookup.py").run()
        t = time.perf_counter()
        at.switch_page("views/projection.py").run()
        again = time.perf_counter() - t
        if at.exception or at.error:
            raise RuntimeError(f"the Projection page failed: {at.exception or [e.value for e in at.error]}")
        specs = [c.proto.spec for c in at.get("plotly_chart")]
        if not specs:
            raise RuntimeError("the Projection page drew no WebGL map")
        return {"first": first, "again": again, "bytes": float(len(specs[0].encode("utf-8")))}
    finally:
        if roots is None:
            os.environ.pop("EMBEDSCOPE_DATA_ROOTS", None)
        else:
            os.environ["EMBEDSCOPE_DATA_ROOTS"] = roots


def umap_all_rows(npy: Path) -> float:
    """Seconds of a UMAP of every row through the dashboard's job (a fresh cache folder; slow)."""
    import core

    m = core.load(npy, vocab=npy.parent / "vocab.txt")
    sel = pj.select(m, pj.SelectionConfig())
    with tempfile.TemporaryDirectory() as cache:
        jobs = pj.ProjectionJobs(pj.ProjectionStore(cache))
        t = time.perf_counter()
        jobs.start(m, sel, pj.ProjectionConfig(method="umap")).result()
        return time.perf_counter() - t


def pca_all_rows(npy: Path) -> tuple[float, float]:
    """(ours, scikit-learn's covariance solver) seconds for PCA of every row of ``npy``."""
    from sklearn.decomposition import PCA

    import core

    m = core.load(npy, vocab=npy.parent / "vocab.txt")
    everything = pj.select(m, pj.SelectionConfig())
    ours = best_of(lambda: pj.project(m, everything, pj.ProjectionConfig(method="pca")), 3)
    theirs = best_of(lambda: PCA(n_components=10, svd_solver="covariance_eigh").fit_transform(m.vectors), 1)
    return ours, theirs


def _browser_draw_or_none(folder: Path) -> dict[str, float] | None:
    """The headless-Chromium first draw, where Debian's chromium and Playwright are installed."""
    import importlib.util
    import shutil

    if shutil.which("chromium") is None or importlib.util.find_spec("playwright") is None:
        return None
    from bench._browser_draw import first_draw

    return first_draw(folder, _bigvocab.ROWS)


def run_big() -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        npy = _bigvocab.build(Path(tmp) / "gemma-sized")
        t_pca, t_sk = pca_all_rows(npy)
        results.append(Result("projection", "PCA to 2-D of 262,144×640 (all rows, 10 components kept)", t_pca,
                              "scikit-learn PCA(10, covariance_eigh)", t_sk, "≤ 3 s", "exact; float32 blocks"))
        page = page_first_draw(npy)
        results.append(Result("projection", "Projection page, 262,144 points: page run that computes and draws "
                              "(AppTest)", page["first"], "re-show from the cache", page["again"], "",
                              f"chart message {page['bytes'] / 2**20:.1f} MiB (Streamlit's limit: 200 MiB)"))
        browser = _browser_draw_or_none(npy.parent)
        if browser is not None:
            results.append(Result("projection", "Projection page, 262,144 points: first draw in headless Chromium "
                                  "(projection computed; click → every point on the WebGL canvas)",
                                  browser["first_draw_s"], "", None, "≤ 5 s",
                                  f"renderer main thread {browser['browser_main_thread_s']:.1f} s, server CPU "
                                  f"{browser['server_cpu_s']:.1f} s; software WebGL (SwiftShader)"))
        if os.environ.get(SLOW_ENV) == "1":
            results.append(Result("projection", "UMAP to 2-D of all 262,144 rows (background job, cached on disk)",
                                  umap_all_rows(npy), "", None, "minutes on 2 cores", "slow"))
    return results


def run() -> list[Result]:
    from gensim.models import KeyedVectors
    from sklearn.decomposition import PCA

    m = core.load("demo")
    everything = pj.select(m, pj.SelectionConfig())
    t_pca = best_of(lambda: pj.project(m, everything, pj.ProjectionConfig(method="pca")), 3)
    t_sk = best_of(lambda: PCA(n_components=2).fit_transform(m.vectors), 3)
    results = [Result("projection", "PCA to 2-D of all of MiniLM (30522×384)", t_pca,
                      "scikit-learn PCA(2).fit_transform", t_sk, "< 1 s",
                      "ours also keeps 10 components' explained variance")]

    ten_k = pj.select(m, pj.SelectionConfig(sampling="random", sample=10_000, seed=0))
    small = pj.select(m, pj.SelectionConfig(sampling="random", sample=300, seed=0))
    t0 = time.perf_counter()
    pj.project(m, small, pj.ProjectionConfig(method="umap"))  # numba compiles UMAP's kernels on first use
    jit = time.perf_counter() - t0
    t_umap = best_of(lambda: pj.project(m, ten_k, pj.ProjectionConfig(method="umap")), 1)
    results.append(Result("projection", "UMAP to 2-D of 10,000 points (PCA to 50 first)", t_umap, "", None,
                          "≤ 30 s", f"seeded (one thread); numba's first-use compile, {jit:.1f} s, not included"))
    t_tsne = best_of(lambda: pj.project(m, ten_k, pj.ProjectionConfig(method="tsne")), 1)
    results.append(Result("projection", "t-SNE (openTSNE) to 2-D of 10,000 points (PCA to 50 first)", t_tsne, "",
                          None, "≤ 60 s", "FFT gradients, annoy neighbours, every core"))

    first, again = _reshow()
    results.append(Result("projection", "re-show the cached Projection page (PCA of all rows) after another page",
                          again, "first show (computes)", first, "< 1 s"))

    kv = KeyedVectors(m.dim)
    kv.add_vectors(list(m.index_to_key), np.asarray(m.vectors))
    with tempfile.TemporaryDirectory() as tmp:
        n = [0]

        def ours() -> None:
            n[0] += 1
            ex.export(m, Path(tmp) / f"ours{n[0]}.txt", "word2vec")

        t_ours = best_of(ours, 1)
        t_gensim = best_of(lambda: kv.save_word2vec_format(str(Path(tmp) / "gensim.txt")), 1)
    results.append(Result("projection", "export MiniLM as word2vec text", t_ours, "gensim save_word2vec_format",
                          t_gensim, "—", "ours writes the shortest round-trip decimals"))
    results.extend(run_big())
    return results
