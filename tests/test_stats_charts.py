"""Statistics against numpy/scipy on the raw array, and chart builders through to_dict()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cosine as scipy_cosine

import core
from core import charts, stats


def test_per_dimension_matches_numpy(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    mean, std = stats.per_dimension(demo)
    assert np.allclose(mean, demo_weights.astype(np.float64).mean(axis=0), atol=1e-10)
    assert np.allclose(std, demo_weights.astype(np.float64).std(axis=0), rtol=1e-6)


def test_nonfinite_rows_are_counted_not_averaged() -> None:
    a = np.array([[1.0, 2.0], [np.nan, 4.0], [np.inf, 0.0]], dtype=np.float32)
    s = stats.summary(core.EmbeddingMatrix(a, ["a", "b", "c"]))
    assert s.nonfinite == 2
    assert s.mean == pytest.approx(np.mean([1.0, 2.0, 4.0, 0.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_dimension_leaves_out_nonfinite_values(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "_PER_DIM_VALUES", 12)  # several chunks of 3 rows, some with NaN/Inf
    a = np.random.default_rng(4).normal(size=(10, 4)).astype(dtype)
    a[1, 0], a[5, 2], a[9, 3] = np.nan, np.inf, -np.inf
    m = core.EmbeddingMatrix(a, [f"t{i}" for i in range(10)])
    mean, std = stats.per_dimension(m)
    masked = np.where(np.isfinite(a), a, np.nan).astype(np.float64)
    assert np.allclose(mean, np.nanmean(masked, axis=0), atol=1e-12)
    assert np.allclose(std, np.nanstd(masked, axis=0), atol=1e-12)
    assert np.isnan(m.vectors[1, 0]) and not m.vectors.flags.writeable  # the matrix itself is untouched


def test_cosine_and_top_dims(demo: core.EmbeddingMatrix) -> None:
    a, b = np.asarray(demo["hello"]), np.asarray(demo["hi"])
    assert stats.cosine(a, b) == pytest.approx(1 - scipy_cosine(a, b), abs=1e-6)
    top = stats.top_dims(a, 5)
    assert [d for d, _ in top] == list(np.argsort(-np.abs(a))[:5])
    cm = stats.cosine_matrix(np.stack([a, b]))
    assert cm[0, 1] == pytest.approx(1 - scipy_cosine(a, b), abs=1e-6)


def test_norm_histogram_is_binned(demo: core.EmbeddingMatrix) -> None:
    spec = charts.norm_histogram(demo.norms, bins=40).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert spec["encoding"]["x"]["field"] == "start" and spec["encoding"]["y"]["field"] == "rows"
    values = spec["datasets"][next(iter(spec["datasets"]))]
    assert len(values) == 40
    assert sum(v["rows"] for v in values) == len(demo)


def test_vector_lines_and_top_dims_charts(demo: core.EmbeddingMatrix) -> None:
    spec = charts.vector_lines({"hello": np.asarray(demo["hello"])}, first=100).to_dict()
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["color"]["field"] == "token"
    assert len(spec["datasets"][next(iter(spec["datasets"]))]) == 100
    bar = charts.top_dims_bar(stats.top_dims(np.asarray(demo["hello"]), 10)).to_dict()
    assert bar["mark"]["type"] == "bar" and bar["encoding"]["x"]["field"] == "dim"


def _rows(spec: dict) -> list[dict]:
    return spec["datasets"][spec["data"]["name"]]


def test_heatmap_cells_and_labels() -> None:
    m = np.array([[1.0, 0.25, -0.5], [0.25, 1.0, 0.75], [-0.5, 0.75, 1.0]])
    spec = charts.similarity_heatmap(["a", "b", "c"], m).to_dict()
    cells = {(r["a"], r["b"]): r["cosine"] for r in _rows(spec)}
    assert cells == {(a, b): m[i, j] for i, a in enumerate("abc") for j, b in enumerate("abc")}
    rect, text = spec["layer"]
    assert rect["encoding"]["color"]["field"] == "cosine" and rect["encoding"]["color"]["scale"]["domain"] == [-1, 1]
    assert text["encoding"]["text"]["field"] == "cosine"  # every cell is labelled with its value
    assert rect["encoding"]["x"]["sort"] == rect["encoding"]["y"]["sort"] == ["a", "b", "c"]
    # Past 30 labels the numbers would not fit: colour only.
    big = charts.similarity_heatmap([str(i) for i in range(31)], np.eye(31)).to_dict()
    assert "layer" not in big and len(_rows(big)) == 31 * 31


def test_profile_band_is_one_std_either_side() -> None:
    mean, std = np.array([0.5, -1.0, 2.0, 0.0]), np.array([0.1, 0.2, 0.0, 1.5])
    prof = charts.dimension_profile(mean, std).to_dict()
    rows = _rows(prof)
    assert [r["dim"] for r in rows] == [0, 1, 2, 3]
    np.testing.assert_allclose([r["lo"] for r in rows], mean - std)
    np.testing.assert_allclose([r["hi"] for r in rows], mean + std)
    band, line = prof["layer"]
    assert (band["encoding"]["y"]["field"], band["encoding"]["y2"]["field"]) == ("lo", "hi")
    assert line["encoding"]["y"]["field"] == "mean"


def test_lookup_maps_text_to_the_tokenizers_ids_and_the_files_rows(demo: core.EmbeddingMatrix, demo_dir: Path,
                                                                   demo_weights: np.ndarray) -> None:
    from tokenizers import Tokenizer  # the oracle: the tokenizers library on the model's own file

    tok = Tokenizer.from_file(str(demo_dir / "tokenizer.json"))
    tok.no_padding()  # the file pads to 128
    enc = tok.encode("Hello tokenization 🦜")
    found = stats.lookup(demo, "Hello tokenization 🦜", special=True)
    assert [p.id for p in found.pieces] == enc.ids and [p.token for p in found.pieces] == enc.tokens
    assert [p.text for p in found.pieces] == ["Hello tokenization 🦜"[s:e] for s, e in enc.offsets]
    assert [p.unknown for p in found.pieces] == [t == "[UNK]" for t in enc.tokens]
    assert [p.special for p in found.pieces] == [t in ("[CLS]", "[SEP]") for t in enc.tokens]
    for p in found.pieces:
        assert np.array_equal(p.vector, demo_weights[p.id])
        assert p.norm == pytest.approx(float(np.linalg.norm(demo_weights[p.id].astype(np.float64))), rel=1e-6)
    (err,) = found.errors  # the parrot is the one unknown piece, named by the text it came from
    assert err.token == "🦜" and "not in the vocabulary" in str(err)
    assert found.table()["piece"].tolist() == [t for t in enc.tokens if t != "[UNK]"]
    frame = found.vectors_frame()
    assert frame.shape == (len(found.known), 2 + 384)
    assert np.array_equal(frame.iloc[1, 2:].to_numpy(dtype=np.float32), demo_weights[enc.ids[1]])
    js = found.to_json()
    assert js["text"] == "Hello tokenization 🦜" and [p["id"] for p in js["pieces"]] == enc.ids
    assert set(js["pieces"][0]) == {"token", "id", "norm", "vector", "unknown", "special"}
    with pytest.raises(core.TokenNotFound, match="🦜"):
        stats.lookup(demo, "Hello 🦜", strict=True)
