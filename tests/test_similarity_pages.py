"""The three similarity pages, driven through Streamlit's AppTest on the bundled MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _apptest import chart_data
from streamlit.testing.v1 import AppTest

import core

ROOT = Path(__file__).resolve().parents[1]


def _page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard/app.py"), default_timeout=120)
    at.run()
    at.switch_page(f"views/{name}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [*(m.value for m in at.markdown), *(c.value for c in at.caption), *(i.value for i in at.info),
             *(w.value for w in at.warning), *(s.value for s in at.success), *(e.value for e in at.error)]
    return "\n".join(str(p) for p in parts)


def test_neighbors_page_shows_neighbours_of_a_query() -> None:
    at = _page("neighbors")
    at.text_input(key="nb.query").set_value("king").run()
    assert not at.exception
    frame = at.dataframe[0].value
    assert list(frame["token"][:3]) == ["kings", "queen", "monarch"]
    assert len(frame) == 10

    at.text_input(key="nb.query").set_value("king - man + woman").run()
    assert at.dataframe[0].value["token"].iloc[0] == "queen"
    assert "formula" in _texts(at).lower()

    at.radio(key="nb.method").set_value("3CosMul").run()
    assert at.dataframe[0].value["token"].iloc[0] == "queen"


def test_neighbors_page_explains_split_words_and_errors() -> None:
    at = _page("neighbors")
    at.text_input(key="nb.query").set_value("unbelievably").run()
    assert not at.exception
    assert "mean of 5 pieces" in _texts(at)

    at.text_input(key="nb.query").set_value("king - ").run()
    assert not at.exception
    assert any("ends with an operator" in e.value for e in at.error)

    at.text_input(key="nb.query").set_value("king").run()
    at.number_input(key="nb.first_n").set_value(5).run()
    assert not at.exception
    assert any("k must be at most" in e.value for e in at.error)


def test_neighbors_page_odd_one_out() -> None:
    at = _page("neighbors")
    at.text_input(key="nb.odd").set_value("breakfast, cereal, dinner, lunch").run()
    assert not at.exception
    assert any("cereal" in s.value for s in at.success)


def test_heatmap_renders_for_five_words_with_one_unknown(demo: core.EmbeddingMatrix,
                                                          demo_weights: np.ndarray) -> None:
    at = _page("heatmap")
    at.text_area(key="hm.items").set_value("dog, cat, pet, car, 🦄").run()
    assert not at.exception
    assert any("'🦄' is not in the vocabulary" in w.value for w in at.warning)
    words = ["dog", "cat", "pet", "car"]
    frame = at.dataframe[0].value
    assert list(frame.index) == words
    # The table and the chart's cells hold the cosines numpy computes from the weights.
    u = demo_weights[[demo.get_index(w) for w in words]].astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    oracle = u @ u.T
    np.testing.assert_allclose(frame.to_numpy(np.float64), oracle, atol=6e-5)  # the table shows 4 decimals
    cells = chart_data(at, "cosine")
    assert len(cells) == 16
    for a, b, value in zip(cells["a"], cells["b"], cells["cosine"], strict=True):
        assert value == pytest.approx(oracle[words.index(a), words.index(b)], abs=1e-5)

    at.checkbox(key="hm.cluster").check().run()
    assert not at.exception
    assert sorted(at.dataframe[0].value.index) == ["car", "cat", "dog", "pet"]
    assert len(at.get("download_button")) == 2


def test_benchmarks_page_runs_small_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    analogies = tmp_path / "small-questions.txt"
    analogies.write_text(": family\nking queen man woman\nboy girl brother sister\nhe she his her\n"
                         ": capitals\nathens greece paris france\nberlin germany rome zzqx\n", encoding="utf-8")
    pairs = tmp_path / "small-pairs.tsv"
    pairs.write_text("# word1\tword2\tscore\ntiger\tcat\t7.35\nbook\tpaper\t7.46\ncomputer\tkeyboard\t7.62\n"
                     "king\tcabbage\t0.23\nzzqx\tcat\t5\n", encoding="utf-8")
    at = _page("benchmarks")
    at.radio(key="bm.analogies.from").set_value("Path").run()
    at.text_area(key="bm.analogies.path").set_value(str(analogies)).run()
    at.button(key="bm.run_analogies").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Correct / evaluated"].endswith("/ 4")
    assert metrics["Coverage"] == "80.0%"

    at.radio(key="bm.pairs.from").set_value("Path").run()
    at.text_area(key="bm.pairs.path").set_value(str(pairs)).run()
    at.button(key="bm.run_pairs").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert table["pairs used"].iloc[0] == 4
    assert table["oov ratio (%)"].iloc[0] == pytest.approx(20.0)


def test_benchmarks_page_reports_a_bad_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    bad = tmp_path / "bad.txt"
    bad.write_text(": family\nking queen man\n", encoding="utf-8")
    at = _page("benchmarks")
    at.radio(key="bm.analogies.from").set_value("Path").run()
    at.text_area(key="bm.analogies.path").set_value(str(bad)).run()
    at.button(key="bm.run_analogies").click().run()
    assert not at.exception
    assert any("line 2" in e.value for e in at.error)


def test_benchmarks_page_refuses_a_path_outside_the_data_roots(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path / "allowed"))
    outside = tmp_path / "questions.txt"
    outside.write_text(": s\nking queen man woman\n", encoding="utf-8")
    at = _page("benchmarks")
    at.radio(key="bm.analogies.from").set_value("Path").run()
    at.text_area(key="bm.analogies.path").set_value(str(outside)).run()
    at.button(key="bm.run_analogies").click().run()
    assert not at.exception
    assert any("outside the folders" in e.value for e in at.error)
    assert not at.metric
