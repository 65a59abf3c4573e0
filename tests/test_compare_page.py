"""The Compare page under AppTest: a pair sent by the Fine-tune page, the moved-most table and its filters,
token detail, charts, benchmark deltas, quantisation impact, and the bad pairs (same matrix, other width)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import core
from core import compare as cp
from core import export
from dashboard.state import DEMO, SourceSpec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
ROWS = np.arange(2000, 4000)


@pytest.fixture(scope="module")
def pair(demo: core.EmbeddingMatrix, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """2,000 MiniLM rows (A), the same with 20 rows perturbed (B), and a 64-dimension version, as npy folders."""
    d = tmp_path_factory.mktemp("compare_page")
    a = core.EmbeddingMatrix(np.array(demo.vectors[ROWS]), [demo.index_to_key[i] for i in ROWS])
    rng = np.random.default_rng(5)
    chosen = np.sort(rng.choice(len(a), size=20, replace=False))
    v = np.array(a.vectors)
    v[chosen] += rng.standard_normal((20, a.dim)).astype(np.float32) * np.float32(0.15)
    narrow = core.EmbeddingMatrix(np.array(a.vectors[:, :64]), a.index_to_key)
    specs = {}
    for name, m in (("a", a), ("b", a.with_vectors(v)), ("narrow", narrow)):
        export.export(m, d / name, "npy")
        specs[name] = SourceSpec("path", str(d / name), label=name)
    return {"root": d, "specs": specs, "moved": {a.index_to_key[i] for i in chosen}}


def _page(pair: dict[str, object], monkeypatch: pytest.MonkeyPatch, a: str = "a", b: str = "b") -> AppTest:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(pair["root"]))
    specs: dict[str, SourceSpec] = pair["specs"]  # type: ignore[assignment]
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.session_state["compare.preselect"] = (specs[a], specs[b])
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    return at


def _frame(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with this column (AppTest does not expose a dataframe's key)."""
    for d in at.dataframe:
        if column in d.value.columns:
            return d.value
    raise AssertionError(f"no table with a {column!r} column")


def _texts(at: AppTest) -> str:
    parts = [*(c.value for c in at.caption), *(i.value for i in at.info), *(w.value for w in at.warning),
             *(e.value for e in at.error), *(m.value for m in at.markdown)]
    return "\n".join(str(p) for p in parts)


def test_only_the_demo_open_explains_what_to_do() -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare"
    assert any("Only one matrix is open" in i.value for i in at.info)
    assert at.button(key="compare.q_run")  # the quantisation section still works on A alone


def test_pair_from_finetune_page_shows_everything(pair: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(pair, monkeypatch)
    assert not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["shared tokens"] == "2,000" and metrics["only in A"] == "0"
    assert "orthogonal Procrustes" in _texts(at)
    table = _frame(at, "neighbors_a")
    assert set(table["token"][:20]) == pair["moved"]
    assert list(table.columns[:3]) == ["token", "drift", "jaccard"]
    # the top token is shown in detail, with its neighbours in A and B and the charts
    detail = _frame(at, "cosine in A")
    assert list(detail.columns) == ["rank", "in A", "cosine in A", "in B", "cosine in B"] and len(detail) == 10
    assert at.text_input(key="compare.token").value == table["token"].iloc[0]

    moved = cast(set[str], pair["moved"])
    token = sorted(moved)[0]
    at.text_input(key="compare.filter").set_value(token).run()
    filtered = _frame(at, "neighbors_a")
    assert token in set(filtered["token"]) and all(token.casefold() in t.casefold() for t in filtered["token"])
    at.selectbox(key="compare.sort").set_value("jaccard").run()
    by_j = _frame(at, "neighbors_a")["jaccard"].tolist()
    assert by_j == sorted(by_j)
    at.text_input(key="compare.token").set_value("no-such-token").run()
    assert not at.exception and any("not among the compared" in e.value for e in at.error)
    at.text_input(key="compare.follow").set_value(token).run()
    assert not at.exception
    assert "PCA fitted once" in _texts(at)

    at.button(key="compare.q_run").click().run()
    assert not at.exception, at.exception
    q = _frame(at, "format")
    assert list(q["format"]) == ["fp16", "bf16", "int8"]
    assert q["mean_drift"].is_monotonic_increasing


def test_corpus_filter_and_benchmarks(pair: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(pair, monkeypatch)
    at.radio(key="compare.corpus_kind").set_value("Bundled demo corpus").run()
    assert not at.exception
    table = _frame(at, "neighbors_a")
    from core.finetune import demo_corpus

    words = demo_corpus().read_text(encoding="utf-8").lower()
    assert len(table) and all(t.strip("#") in words for t in table["token"])
    assert "distinct tokens in A" in _texts(at)
    at.multiselect(key="compare.bench_sets").set_value(["wordsim353.tsv"]).run()
    at.button(key="compare.bench_run").click().run()
    assert not at.exception, at.exception
    bench = _frame(at, "metric")
    assert list(bench["metric"]) == ["Spearman", "Pearson"]
    assert np.allclose(bench["delta"], bench["B"] - bench["A"])


def test_same_matrix_and_other_widths(pair: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page(pair, monkeypatch, "a", "a")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("A and B are identical" in x.value for x in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["mean drift"] == "0" and metrics["neighbourhood changed"] == "0.0%"
    assert metrics["median Jaccard@10"] == "1"
    table = _frame(at, "neighbors_a")
    assert len(table) and (table["drift"] == 0).all() and (table["jaccard"] == 1).all()

    at = _page(pair, monkeypatch, "a", "narrow")
    assert any("neighbourhoods only" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["mean drift"] == "—"
    at.selectbox(key="compare.align").set_value("Align (Procrustes)").run()
    assert not at.exception
    assert any("384 dimensions and B 64" in e.value for e in at.error)


def test_a_finetune_run_against_its_source(demo: core.EmbeddingMatrix, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from core import finetune as ft

    monkeypatch.setenv("EMBEDSCOPE_RUNS", str(tmp_path))
    run = ft.finetune(demo, ft.demo_corpus(), ft.SGNSConfig(epochs=1, watch_size=0), tmp_path / "run")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    # what the Fine-tune page's "Compare with the original" button stores
    at.session_state["compare.preselect"] = (DEMO, SourceSpec("run", str(run.path), label="run"))
    at.session_state["compare.limit"] = 4000  # the first 4,000 shared tokens keep this test quick
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    text = _texts(at)
    assert "B is a fine-tune of A" in text and "only the first 4,000" in text
    rows = set(cp.corpus_rows(demo, ft.demo_corpus()).tolist())
    table = _frame(at, "neighbors_a")
    moved = table[table["drift"] > 0]
    assert len(moved) and set(moved["row_a"]) <= rows
