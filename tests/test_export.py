"""Exports reload through our loaders to the same tokens and values; word2vec exports load in gensim.

Oracles: the vectors as the safetensors library itself reads them (``demo_weights``), gensim's
``KeyedVectors.load_word2vec_format``, and plain reads of the written text files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core
from core import export as ex
from core import projection as pj
from core.errors import OutputExistsError, ParameterError
from core.matrix import EmbeddingMatrix


@pytest.fixture(scope="module")
def rows(demo: core.EmbeddingMatrix) -> np.ndarray:
    """2,000 rows of every kind, in a shuffled order (exports keep the order given)."""
    idx = pj.select(demo, pj.SelectionConfig(sampling="stratified", sample=2000, seed=11)).indices.copy()
    np.random.default_rng(0).shuffle(idx)
    return idx


def _target(tmp_path: Path, fmt: str) -> Path:
    return tmp_path / {"word2vec": "vectors.txt", "word2vec-bin": "vectors.bin"}.get(fmt, f"out-{fmt}")


@pytest.mark.parametrize("fmt", ex.EXPORT_FORMATS)
def test_every_format_reloads_to_the_same_tokens_and_values(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                                            rows: np.ndarray, tmp_path: Path, fmt: str) -> None:
    done = ex.export(demo, _target(tmp_path, fmt), fmt, rows=rows)
    assert done.rows == 2000 and done.dim == 384 and all(f.is_file() for f in done.files)
    back = core.load(done.target)
    assert list(back.index_to_key) == [demo.index_to_key[i] for i in rows]
    np.testing.assert_array_equal(back.vectors, demo_weights[rows])
    ex.verify(demo, done, rows)
    assert not list(tmp_path.glob(".*.tmp"))  # no temp names left behind


def test_whole_matrix_safetensors_keeps_the_tokenizer(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                                      tmp_path: Path) -> None:
    done = ex.export(demo, tmp_path / "minilm", "safetensors")
    assert {f.name for f in done.files} == {"model.safetensors", "tokenizer.json"}
    back = core.load(tmp_path / "minilm")
    assert back.has_tokenizer and back.tokenizer.scheme == "wordpiece"
    assert [(p.token, p.id) for p in back.lookup("Hello world")] == [("hello", 7592), ("world", 2088)]
    assert back.kinds == demo.kinds
    np.testing.assert_array_equal(back.vectors, demo_weights)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "minilm" / "model.safetensors"), "np") as f:
        assert list(f.keys()) == [ex.TENSOR_NAME]
        assert f.metadata()["source_tensor"] == "embeddings.word_embeddings.weight"


def test_whole_matrix_npy_with_vocab_txt(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                         tmp_path: Path) -> None:
    done = ex.export(demo, tmp_path / "npy", "npy")
    lines = (tmp_path / "npy" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == list(demo.index_to_key) and lines[-1] == ""
    np.testing.assert_array_equal(np.load(tmp_path / "npy" / "vectors.npy"), demo_weights)
    assert ex.verify(demo, done).has_tokenizer


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_loads_in_gensim(demo: core.EmbeddingMatrix, demo_weights: np.ndarray, rows: np.ndarray,
                                  tmp_path: Path, binary: bool) -> None:
    from gensim.models import KeyedVectors

    fmt = "word2vec-bin" if binary else "word2vec"
    path = ex.export(demo, _target(tmp_path, fmt), fmt, rows=rows).target
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == [demo.index_to_key[i] for i in rows]
    np.testing.assert_array_equal(kv.vectors, demo_weights[rows])
    if not binary:
        assert path.read_text(encoding="utf-8").split("\n", 1)[0] == "2000 384"


def test_projector_metadata_rows_match_the_vectors(demo: core.EmbeddingMatrix, rows: np.ndarray,
                                                   tmp_path: Path) -> None:
    one = ex.export(demo, tmp_path / "one", "projector", rows=rows)
    vec_lines = (one.target / "vectors.tsv").read_text().split("\n")
    meta_lines = (one.target / "metadata.tsv").read_text(encoding="utf-8").split("\n")
    assert len(vec_lines) - 1 == len(meta_lines) - 1 == 2000  # one column: no header row
    assert meta_lines[:-1] == [demo.index_to_key[i] for i in rows]
    assert all(len(line.split("\t")) == 384 for line in vec_lines[:-1])

    many = ex.export(demo, tmp_path / "many", "projector", rows=rows, columns=["kind", "id"])
    meta = pd.read_csv(many.target / "metadata.tsv", sep="\t", quoting=3, keep_default_na=False, dtype=str)
    assert list(meta.columns) == ["token", "kind", "id"]  # several columns: a header row
    assert len(meta) == 2000
    assert meta["token"].tolist() == [demo.index_to_key[i] for i in rows]
    assert meta["kind"].tolist() == [demo.kinds[i] for i in rows]
    back = ex.verify(demo, many, rows)
    assert back.metadata["kind (file)"].tolist() == meta["kind"].tolist()


def test_a_projector_file_keeps_its_columns(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "vectors.tsv").write_text("1\t2\n3\t4\n5\t6\n")
    (src / "metadata.tsv").write_text("word\tpos\ncat\tnoun\nrun\tverb\nred\tadj\n")
    m = core.load(src)
    done = ex.export(m, tmp_path / "copy", "projector")
    header = (tmp_path / "copy" / "metadata.tsv").read_text().split("\n")[0]
    assert header == "token\tword\tpos"
    back = ex.verify(m, done)
    assert back.metadata["pos"].tolist() == ["noun", "verb", "adj"]


def test_never_overwrite_without_force_and_never_a_source(demo: core.EmbeddingMatrix, rows: np.ndarray,
                                                          tmp_path: Path) -> None:
    target = tmp_path / "w.txt"
    ex.export(demo, target, "word2vec", rows=rows[:10])
    before = target.read_bytes()
    with pytest.raises(OutputExistsError, match="exists already"):
        ex.export(demo, target, "word2vec", rows=rows[:20])
    assert target.read_bytes() == before
    ex.export(demo, target, "word2vec", rows=rows[:20], force=True)
    assert target.read_text().startswith("20 384\n")
    with pytest.raises(ParameterError, match="source"):
        ex.export(demo, demo.provenance.path, "word2vec-bin", force=True)
    with pytest.raises(ParameterError, match="source"):
        ex.export(demo, Path(demo.provenance.path).parent, "npy", force=True)
    assert core.load("demo").shape == (30522, 384)


def test_tokens_a_format_cannot_hold(tmp_path: Path) -> None:
    m = EmbeddingMatrix(np.eye(3, dtype=np.float32), ["new york", "a\tb", "c"])
    with pytest.raises(ParameterError, match=r"2 tokens contain spaces or tabs.*'new york' \(row 0\)"):
        ex.export(m, tmp_path / "w.txt", "word2vec")
    with pytest.raises(ParameterError, match=r"'a\\tb' \(row 1\)"):
        ex.export(m, tmp_path / "p", "projector")
    spaced = EmbeddingMatrix(np.eye(2, dtype=np.float32), ["new york", "c"])
    ex.verify(spaced, ex.export(spaced, tmp_path / "p2", "projector"))
    ex.verify(m, ex.export(m, tmp_path / "s", "safetensors"))
    assert not (tmp_path / "w.txt").exists()
    with pytest.raises(ParameterError, match="read back as another format"):
        ex.export(spaced, tmp_path / "w.tsv", "word2vec")
    with pytest.raises(ParameterError, match="format='csv'"):
        ex.export(spaced, tmp_path / "x", "csv")


def test_line_breaks_in_tokens_use_vocab_json(tmp_path: Path) -> None:
    m = EmbeddingMatrix(np.eye(3, dtype=np.float32), ["a\nb", "", "c"])
    done = ex.export(m, tmp_path / "n", "npy")
    assert {f.name for f in done.files} == {"vectors.npy", "vocab.json"}
    ex.verify(m, done)


def test_non_finite_values(tmp_path: Path) -> None:
    v = np.array([[1, np.nan], [np.inf, -np.inf], [1e-8, 3]], dtype=np.float32)
    m = EmbeddingMatrix(v, ["a", "b", "c"])
    for fmt in ("word2vec", "word2vec-bin", "npy", "safetensors"):
        ex.verify(m, ex.export(m, _target(tmp_path, fmt), fmt))
    with pytest.raises(ParameterError, match=r"2 rows hold NaN or Inf.*0 \('a'\), 1 \('b'\)"):
        ex.export(m, tmp_path / "p", "projector")
    ex.verify(m, ex.export(m, tmp_path / "p", "projector", rows=[2]), [2])


def test_cancel_leaves_nothing(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] > 2

    with pytest.raises(core.Cancelled):
        ex.export(demo, tmp_path / "p", "projector", cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_download_bytes(demo: core.EmbeddingMatrix, rows: np.ndarray, tmp_path: Path) -> None:
    data, name, mime = ex.export_bytes(demo, "projector", rows=rows[:50], name="minilm")
    assert name == ex.download_name("projector", "minilm") == "minilm-projector.zip" and mime == "application/zip"
    zipfile.ZipFile(__import__("io").BytesIO(data)).extractall(tmp_path)
    back = core.load(tmp_path / "minilm")
    assert list(back.index_to_key) == [demo.index_to_key[i] for i in rows[:50]]
    data, name, _ = ex.export_bytes(demo, "word2vec-bin", rows=rows[:50])
    assert name == "embeddings.bin" and data.startswith(b"50 384\n")


def test_coordinates_csv_and_charts(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    from core import charts

    sel = pj.select(demo, pj.SelectionConfig(sampling="list", tokens=("king", "queen", ",", '"', "null", "nan")))
    p3 = pj.project(demo, sel, pj.ProjectionConfig(dims=3))
    path = ex.write_coordinates(demo, p3, tmp_path / "coords.csv")
    df = pd.read_csv(path, keep_default_na=False)
    assert list(df.columns) == ["token", "id", "x", "y", "z"]
    assert df["token"].tolist() == ["king", "queen", ",", '"', "null", "nan"]
    assert df["id"].tolist() == sel.indices.tolist()
    np.testing.assert_allclose(df[["x", "y", "z"]].to_numpy(), p3.coords, rtol=1e-6)
    with pytest.raises(OutputExistsError):
        ex.write_coordinates(demo, p3, path)
    p2 = pj.project(demo, sel, pj.ProjectionConfig())
    assert ex.coordinates_csv(demo, p2).split("\n", 1)[0] == "token,id,x,y"
    chart = charts.projection_scatter(p2.frame(demo), axis_titles=p2.axis_titles)
    assert ex.chart_image(chart, "png").startswith(b"\x89PNG")
    assert b"<svg" in ex.chart_image(chart, "svg")[:200]
    assert ex.write_chart(chart, tmp_path / "c.svg").read_bytes().startswith(b"<svg")
    with pytest.raises(ParameterError, match="png or svg"):
        ex.chart_image(chart, "gif")


def test_cli_export_and_project(demo_weights: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    out = tmp_path / "w.bin"
    assert main(["export", "demo", "--format", "word2vec-bin", "--out", str(out), "--sample", "300", "--sampling",
                 "random", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"format", "out", "files", "rows", "dim"} <= payload.keys()
    assert payload["rows"] == 300 and payload["verified"] is True
    back = core.load(out)
    demo = core.load("demo")
    np.testing.assert_array_equal(back.vectors, demo_weights[[demo.get_index(t) for t in back.index_to_key]])
    assert main(["export", "demo", "--format", "word2vec-bin", "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err

    csv = tmp_path / "c.csv"
    assert main(["project", "demo", "--method", "pca", "--dims", "3", "--sample", "500", "--sampling",
                 "stratified", "--seed", "2", "--out", str(csv), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["points"] == 500 and payload["columns"] == ["token", "id", "x", "y", "z"]
    assert "stratified by token kind" in payload["selection"]
    df = pd.read_csv(csv, keep_default_na=False)
    assert list(df.columns) == ["token", "id", "x", "y", "z"] and len(df) == 500
    assert main(["project", "demo", "--method", "tsne", "--sample", "40", "--out", str(tmp_path / "t.csv")]) == 2
    assert "perplexity=30: too large for 40 points" in capsys.readouterr().err
    assert main(["project", "demo", "--method", "pca", "--sample", "99999", "--out", str(tmp_path / "u.csv")]) == 2
    assert "sample=99,999: larger than the matrix" in capsys.readouterr().err


def test_cli_as_a_process(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "core.cli", "export", "demo", "--format", "projector", "--out",
                          str(tmp_path / "p"), "--sample", "20", "--json"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["files"][0].endswith("vectors.tsv")
    res = subprocess.run([sys.executable, "-m", "core.cli", "export", "demo", "--format", "projector", "--out",
                          str(tmp_path / "p")], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "exists already" in res.stderr and "Traceback" not in res.stderr
