"""The Projection and Export pages under AppTest: PCA on the demo renders; an export writes files that reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _apptest import chart_data
from streamlit.testing.v1 import AppTest

import core

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EMBEDSCOPE_CACHE", str(tmp_path))  # t-SNE/UMAP results go to the server's cache folder
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def _altair_specs(at: AppTest) -> list[dict]:
    import json

    specs = []
    for el in at.get("vega_lite_chart"):
        specs.append(json.loads(el.proto.spec))
    return specs


def test_pca_on_the_demo_renders(app: AppTest, demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    app.switch_page("views/projection.py").run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert app.title[0].value == "Projection"
    # The oracle: numpy's eigh of the float64 covariance of the weights as safetensors reads them.
    x = demo_weights.astype(np.float64)
    x -= x.mean(axis=0)
    w, v = np.linalg.eigh(x.T @ x)
    top = np.argsort(w)[::-1]
    ratios = w[top] / w.sum()
    # The scatter holds every row, each at its first two principal components (up to their sign).
    points = chart_data(app, "x")
    assert points["id"].tolist() == list(range(len(demo))) and points["token"].tolist() == list(demo.index_to_key)
    for axis, comp in (("x", 0), ("y", 1)):
        oracle = x @ v[:, top[comp]]
        ours = points[axis].to_numpy(np.float64)
        np.testing.assert_allclose(np.sign(ours @ oracle) * ours, oracle, atol=1e-3 * np.abs(oracle).max())
    # The bars are the explained-variance ratios, the two drawn components marked as shown.
    bars = chart_data(app, "ratio")
    np.testing.assert_allclose(bars["ratio"], ratios[:len(bars)], rtol=1e-4)
    assert bars["shown"].tolist()[:3] == ["shown", "shown", "not shown"]
    # The caption says how many points there are and how much of the variance the two components explain.
    captions = [c.value for c in app.caption]
    assert any("30,522 rows" in c and f"{ratios[:2].sum():.1%}" in c for c in captions), captions
    labels = {b.proto.label for b in app.get("download_button")}
    assert {"Coordinates (CSV)", "Chart (PNG)", "Chart (SVG)"} <= labels


def test_coming_back_is_cached_and_search_highlights(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import projection

    runs: list[int] = []  # the number of points of every projection computed from here on
    real_project = projection.project

    def counted(m: core.EmbeddingMatrix, selection: projection.Selection, *args: Any, **kwargs: Any) -> Any:
        runs.append(len(selection))
        return real_project(m, selection, *args, **kwargs)

    monkeypatch.setattr(projection, "project", counted)
    import streamlit as st

    st.cache_resource.clear()  # start from an empty process cache: another test may have projected this sample
    app.switch_page("views/projection.py").run()
    app.selectbox(key="projection.points").set_value("Random sample").run()
    app.number_input(key="projection.sample").set_value(1500).run()
    assert not app.exception, app.exception
    assert runs.count(1500) == 1
    assert any("1,500 of the 30,522 rows" in c.value for c in app.caption)
    app.switch_page("views/overview.py").run()
    app.switch_page("views/projection.py").run()
    # The page comes back as it was left: the same sample, taken from the cache, not projected again.
    assert app.number_input(key="projection.sample").value == 1500
    assert runs.count(1500) == 1
    assert any("1,500 of the 30,522 rows" in c.value for c in app.caption)
    app.text_input(key="projection.search").input("king").run()
    assert not app.exception, app.exception
    assert any("Nearest to 'king'" in s.value for s in app.subheader)


def test_bad_axis_word_is_an_error_not_a_traceback(app: AppTest) -> None:
    app.switch_page("views/projection.py").run()
    app.radio(key="projection.method").set_value("Custom axes").run()
    assert not app.exception, app.exception
    assert any("cos(·, woman − man)" in c.value for c in app.caption)
    app.text_input(key="projection.ax_b").input("🦜").run()
    assert not app.exception
    assert any("not in the vocabulary" in e.value for e in app.error)


def test_tsne_waits_for_run_and_checks_perplexity(app: AppTest) -> None:
    app.switch_page("views/projection.py").run()
    app.radio(key="projection.method").set_value("t-SNE").run()
    app.selectbox(key="projection.points").set_value("First N rows").run()
    app.number_input(key="projection.sample").set_value(20).run()
    assert not app.exception, app.exception
    assert any("perplexity=30: too large for 20 points" in e.value for e in app.error)


def test_export_writes_files_that_reload(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    app.switch_page("views/export.py").run()
    assert not app.exception, app.exception
    app.selectbox(key="export.format").set_value("npy").run()
    app.radio(key="export.rows").set_value("Random sample").run()
    app.number_input(key="export.sample").set_value(300).run()
    out = tmp_path / "minilm-npy"
    app.text_input(key="export.out").input(str(out)).run()
    app.button(key="export.go").click().run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert any("same 300 tokens and values" in s.value for s in app.success)
    back = core.load(out)
    demo = core.load("demo")
    ids = [demo.get_index(t) for t in back.index_to_key]
    assert len(set(ids)) == 300
    assert np.array_equal(back.vectors, demo.vectors[ids])
    # Writing again without "replace" is refused with a clear message.
    app.button(key="export.go").click().run()
    assert any("exists already" in e.value for e in app.error)


def test_export_outside_the_data_roots_is_refused(app: AppTest, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path / "allowed"))
    app.switch_page("views/export.py").run()
    app.text_input(key="export.out").input(str(tmp_path / "elsewhere")).run()
    app.button(key="export.go").click().run()
    assert not app.exception
    assert any("outside the folders this server may open" in e.value for e in app.error)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_tsne_runs_on_request_then_comes_back_cached(app: AppTest) -> None:
    app.switch_page("views/projection.py").run()
    app.radio(key="projection.method").set_value("t-SNE").run()
    app.selectbox(key="projection.points").set_value("Stratified by kind").run()
    app.number_input(key="projection.sample").set_value(300).run()
    assert not app.get("vega_lite_chart")  # nothing runs until asked
    app.button(key="projection.run").click().run()
    assert not app.exception, app.exception
    assert any(c.value.startswith("t-SNE (2-D) of a sample of 300") for c in app.caption)
    app.switch_page("views/overview.py").run()
    app.switch_page("views/projection.py").run()
    assert not [b for b in app.button if b.key == "projection.run"]  # cached: no Run button, no wait
    assert any(c.value.startswith("t-SNE (2-D) of a sample of 300") for c in app.caption)


def test_3d_uses_plotly(app: AppTest) -> None:
    app.switch_page("views/projection.py").run()
    app.radio(key="projection.dims").set_value(3).run()
    assert not app.exception, app.exception
    assert app.get("plotly_chart")
    assert any(c.value.startswith("PCA (3-D) of all 30,522 rows.") for c in app.caption)
    assert "Interactive 3-D view (HTML)" in {b.proto.label for b in app.get("download_button")}


def test_many_points_are_drawn_one_by_one_with_webgl(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import json

    from core import projection

    monkeypatch.setattr(projection, "BROWSER_MAX_POINTS", 10_000)
    app.switch_page("views/projection.py").run()
    assert not app.exception, app.exception
    charts_ = app.get("plotly_chart")
    assert charts_ and not [m for s in _altair_specs(app) for m in [s.get("mark")] if m == "circle"]
    spec_text = charts_[0].proto.spec
    spec = json.loads(spec_text)
    assert {t["type"] for t in spec["data"]} == {"scattergl"}
    points = sum(len(base64.b64decode(t["x"]["bdata"])) // 4 for t in spec["data"])
    assert points == 30_522  # every row, none sampled away
    # Compact: float32 coordinates and int32 ids in binary, one label each (the bench measures 262,144 rows).
    assert len(spec_text) / points < 40, len(spec_text)
    assert any("drag a box or a lasso" in c.value for c in app.caption)
    # The binned density stays an option: its cells count every one of the 30,522 points.
    app.radio(key="projection.draw").set_value("binned density").run()
    assert not app.exception, app.exception
    assert not app.get("plotly_chart")
    cells = chart_data(app, "count")
    assert int(cells["count"].sum()) == 30_522 and (cells["count"] > 0).all()


def test_umap_runs_once_per_server(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_CACHE", str(tmp_path))
    app.switch_page("views/projection.py").run()
    app.radio(key="projection.method").set_value("UMAP").run()
    app.selectbox(key="projection.points").set_value("Random sample").run()
    app.number_input(key="projection.sample").set_value(300).run()
    assert not app.exception, app.exception
    assert any("It runs once on this server" in i.value for i in app.info)
    app.button(key="projection.run").click().run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    assert any(c.value.startswith("UMAP (2-D) of a random sample of 300") for c in app.caption)
    assert list((tmp_path / "projections").glob("umap-*.npz"))
    # After a restart (the process's caches emptied) a new session reads it from disk, without a Run button.
    import streamlit as st

    st.cache_resource.clear()
    other = AppTest.from_file(APP, default_timeout=180)
    other.run()
    other.switch_page("views/projection.py").run()
    other.radio(key="projection.method").set_value("UMAP").run()
    other.selectbox(key="projection.points").set_value("Random sample").run()
    other.number_input(key="projection.sample").set_value(300).run()
    assert not other.exception, other.exception
    assert not [b for b in other.button if b.key == "projection.run"]
    assert any("read from its cache" in c.value for c in other.caption)
