"""Neighbours, analogies, doesn't-match and similarity tables against gensim on the same vectors.

Two matrices: MiniLM (30522×384, the bundled demo; gensim gets the weights read by the safetensors
library) and a small word2vec model gensim trains on its lee corpus (exported by gensim, read by our
loader). gensim's ``KeyedVectors`` is the oracle for cosine, 3CosAdd, 3CosMul and doesnt_match;
scikit-learn and scipy are the oracles for euclidean and dot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import core
from core import charts, search
from core.cli import main
from core.errors import ParameterError, TokenNotFound
from core.search import Filters, _engine
from core.search._backends import TorchOps


# ------------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kv_minilm(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(demo_weights.shape[1])
    kv.add_vectors(list(demo.index_to_key), demo_weights)
    return kv


@pytest.fixture(scope="module")
def lee(lee_model: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[core.EmbeddingMatrix, Any]:
    """The lee word2vec model as gensim wrote it, opened by our loader; and gensim's own vectors."""
    path = tmp_path_factory.mktemp("lee") / "lee.w2v.txt"
    lee_model.wv.save_word2vec_format(str(path))
    return core.load(path), lee_model.wv


def _same_ranking(ours: list[tuple[str, float]], theirs: list[tuple[str, float]], tol: float = 1e-5) -> None:
    """Same tokens in the same order (a swap only between scores closer than 1e-6), scores within tol."""
    assert len(ours) == len(theirs)
    for (t1, s1), (t2, s2) in zip(ours, theirs, strict=True):
        assert s1 == pytest.approx(s2, abs=tol), (ours, theirs)
        if t1 != t2:
            partner = dict(theirs).get(t1)
            assert partner is not None and abs(partner - s1) < 1e-6, (ours, theirs)


def _pairs(res: search.Neighbors) -> list[tuple[str, float]]:
    return [(n.token, n.score) for n in res.neighbors]


def _sample_words(m: core.EmbeddingMatrix, n: int, kinds: tuple[str, ...] = ("word", "subword", "number")) -> list[str]:
    rows = [i for i, kind in enumerate(m.kinds) if kind in kinds]
    pick = np.linspace(0, len(rows) - 1, n).astype(int)
    return [m.index_to_key[rows[i]] for i in pick]


# ------------------------------------------------------------------------------------------------
# neighbours = most_similar
# ------------------------------------------------------------------------------------------------
def test_neighbors_equal_most_similar_on_minilm(demo: core.EmbeddingMatrix, kv_minilm: Any) -> None:
    words = [*_sample_words(demo, 40), "king", "[CLS]", "##ing", "1990"]
    batch = search.neighbors_many(demo, words, k=10)
    for word, res in zip(words, batch, strict=True):
        _same_ranking(_pairs(res), kv_minilm.most_similar(word, topn=10))
    assert [n.token for n in search.neighbors(demo, "king", k=3).neighbors] == ["kings", "queen", "monarch"]


def test_neighbors_equal_most_similar_on_lee(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    m, kv = lee
    assert m.index_to_key == tuple(kv.index_to_key)
    words = _sample_words(m, 40, kinds=("word", "number", "other", "punctuation"))
    for word, res in zip(words, search.neighbors_many(m, words, k=15), strict=True):
        _same_ranking(_pairs(res), kv.most_similar(word, topn=15))


def test_restrict_to_first_rows_equals_restrict_vocab(lee: tuple[core.EmbeddingMatrix, Any],
                                                      kv_minilm: Any, demo: core.EmbeddingMatrix) -> None:
    m, kv = lee
    for word in ["government", "fire", "Australia"]:
        res = search.neighbors(m, word, k=8, filters=Filters(first_n=500))
        _same_ranking(_pairs(res), kv.most_similar(word, topn=8, restrict_vocab=500))
    res = search.neighbors(demo, "apple", k=5, filters=Filters(first_n=12_000))
    _same_ranking(_pairs(res), kv_minilm.most_similar("apple", topn=5, restrict_vocab=12_000))


def test_small_chunks_and_blocks_give_the_same_answer(demo: core.EmbeddingMatrix, kv_minilm: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Force many vocabulary chunks and query blocks, so the merge of partial top-k lists is exercised.
    monkeypatch.setattr(_engine, "_SCORE_ELEMS", 1 << 14)
    monkeypatch.setattr(_engine, "_BLOCK_ROWS", 3)
    words = ["dog", "paris", "running", "##ly", "2001", "blue", "violin"]
    for word, res in zip(words, search.neighbors_many(demo, words, k=12), strict=True):
        _same_ranking(_pairs(res), kv_minilm.most_similar(word, topn=12))


def test_torch_backend_matches_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA code path, run by torch on the CPU: same answers as gensim."""
    monkeypatch.setattr(_engine, "_backend", lambda index, device: TorchOps(index, "cpu"))
    monkeypatch.setattr(_engine, "_SCORE_ELEMS", 1 << 16)
    words = ["dog", "paris", "##ly"]
    for word, res in zip(words, search.neighbors_many(demo, words, k=10,
                                                          filters=Filters(first_n=25_000)), strict=True):
        _same_ranking(_pairs(res), kv_minilm.most_similar(word, topn=10, restrict_vocab=25_000))
    res = search.analogy(demo, "king - man + woman", k=5, method="mul")
    _same_ranking(_pairs(res), kv_minilm.most_similar_cosmul(positive=["king", "woman"], negative=["man"], topn=5))


@pytest.mark.gpu
def test_cuda_matches_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any) -> None:
    words = _sample_words(demo, 20)
    for word, res in zip(words, search.neighbors_many(demo, words, k=10, device="cuda"), strict=True):
        _same_ranking(_pairs(res), kv_minilm.most_similar(word, topn=10))


# ------------------------------------------------------------------------------------------------
# analogies and doesn't-match
# ------------------------------------------------------------------------------------------------
ANALOGIES = [(["king", "woman"], ["man"]), (["paris", "germany"], ["france"]), (["walking", "swam"], ["walked"]),
             (["good", "worse"], ["bad"]), (["dog"], ["cat"]), (["tokyo", "japan", "france"], ["paris"])]


@pytest.mark.parametrize(("positive", "negative"), ANALOGIES)
def test_analogy_add_and_mul_equal_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any, positive: list[str],
                                         negative: list[str]) -> None:
    formula = " + ".join(positive) + "".join(f" - {w}" for w in negative)
    add = search.analogy(demo, formula, k=10, method="add")
    _same_ranking(_pairs(add), kv_minilm.most_similar(positive=positive, negative=negative, topn=10))
    mul = search.analogy(demo, positive, negative, k=10, method="mul")
    _same_ranking(_pairs(mul), kv_minilm.most_similar_cosmul(positive=positive, negative=negative, topn=10))
    assert not {n.token for n in add.neighbors} & {*positive, *negative}


def test_analogy_on_lee_and_weights(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    m, kv = lee
    for pos, neg in [(["police", "fire"], ["government"]), (["Australia", "says"], ["the"])]:
        _same_ranking(_pairs(search.analogy(m, pos, neg, k=10)),
                      kv.most_similar(positive=pos, negative=neg, topn=10))
        _same_ranking(_pairs(search.analogy(m, pos, neg, k=10, method="mul")),
                      kv.most_similar_cosmul(positive=pos, negative=neg, topn=10))
    # Coefficients are gensim's (key, weight) tuples.
    res = search.neighbors(m, "2*police - 0.5*fire", k=10)
    _same_ranking(_pairs(res), kv.most_similar(positive=[("police", 2.0)], negative=[("fire", -0.5)], topn=10))


@pytest.mark.parametrize("words", [["breakfast", "cereal", "dinner", "lunch"], ["dog", "cat", "horse", "car"],
                                   ["red", "green", "blue", "happy", "yellow"]])
def test_doesnt_match_equals_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any, words: list[str]) -> None:
    out = search.doesnt_match(demo, words)
    assert out.odd == kv_minilm.doesnt_match(words)
    ranked = kv_minilm.rank_by_centrality(words)
    assert [w for w, _ in out.ranking] == [w for _, w in ranked]
    np.testing.assert_allclose([s for _, s in out.ranking], [float(s) for s, _ in ranked], atol=1e-5)


def test_doesnt_match_reports_missing_words(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    m, kv = lee
    out = search.doesnt_match(m, ["police", "fire", "firefighters", "goverment"])
    assert out.odd == kv.doesnt_match(["police", "fire", "firefighters"])
    assert [e.token for e in out.missing] == ["goverment"]
    assert "government" in out.missing[0].suggestions
    with pytest.raises(ParameterError, match="at least two known words"):
        search.doesnt_match(m, ["police", "goverment"])


# ------------------------------------------------------------------------------------------------
# euclidean and dot, batches and exclusions (scikit-learn / scipy as oracles)
# ------------------------------------------------------------------------------------------------
def test_euclidean_and_dot_against_sklearn(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    from sklearn.neighbors import NearestNeighbors

    m, _ = lee
    x = np.asarray(m.vectors, dtype=np.float64)
    q = x[::97] + 0.01
    dist, idx = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(x).kneighbors(q)
    ids, scores = search.knn(m, q, k=7, metric="euclidean")
    np.testing.assert_array_equal(ids, idx)
    np.testing.assert_allclose(scores, dist, rtol=1e-5)

    from sklearn.metrics.pairwise import linear_kernel

    dots = linear_kernel(q, x)
    ids, scores = search.knn(m, q, k=7, metric="dot")
    np.testing.assert_array_equal(ids, np.argsort(-dots, axis=1, kind="stable")[:, :7])
    np.testing.assert_allclose(scores, np.sort(dots, axis=1)[:, ::-1][:, :7], rtol=1e-4)


def test_knn_rows_excludes_self_like_sklearn(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    from sklearn.neighbors import NearestNeighbors

    m, _ = lee
    ids, scores = search.knn_rows(m, k=5)
    assert ids.shape == (len(m), 5) and not ids.flags.writeable and not scores.flags.writeable
    dist, idx = NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(m.vectors).kneighbors()
    agree = (ids == idx[:, :5]).all(axis=1) | (np.abs(1 - scores - dist[:, :5]).max(axis=1) < 1e-5)
    assert agree.mean() > 0.999
    np.testing.assert_allclose(1 - scores, dist[:, :5], atol=1e-5)
    assert not (ids == np.arange(len(m))[:, None]).any()


def test_filters_hide_kinds(demo: core.EmbeddingMatrix, kv_minilm: Any) -> None:
    f = Filters(hide_special=True, hide_subwords=True, hide_numbers=True)
    res = search.neighbors(demo, "##ing", k=20, filters=f)
    assert {n.kind for n in res.neighbors} <= {"word", "punctuation", "cjk", "other"}
    # The oracle: gensim's scores for every row, with the hidden kinds taken out.
    dists = kv_minilm.most_similar("##ing", topn=None)
    kinds = np.asarray(demo.kinds)
    dists[np.isin(kinds, ["special", "subword", "number", "unassigned"])] = -np.inf
    dists[demo.get_index("##ing")] = -np.inf
    order = np.argsort(-dists, kind="stable")[:20]
    _same_ranking(_pairs(res), [(demo.index_to_key[i], float(dists[i])) for i in order])


def test_exclude_forms_and_padding(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    m, _ = lee
    v = np.asarray(m.vectors[:3])
    a, _ = search.knn(m, v, k=4, exclude=np.arange(3))
    b, _ = search.knn(m, v, k=4, exclude=[[0], [1], [2]])
    np.testing.assert_array_equal(a, b)
    assert not (a == np.arange(3)[:, None]).any()
    # Exclusions that leave fewer than k rows pad with -1 / NaN.
    ids, scores = search.knn(m, v[:1], k=4, restrict=4, exclude=[[0, 1]])
    assert list(ids[0, 2:]) == [-1, -1] and np.isnan(scores[0, 2:]).all()


def test_progress_and_cancel(demo: core.EmbeddingMatrix, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "_BLOCK_ROWS", 8)
    seen: list[float] = []
    search.knn(demo, demo.vectors[:32], k=3, progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 3
    with pytest.raises(core.Cancelled):
        search.knn(demo, demo.vectors[:32], k=3, cancel=lambda: True)


# ------------------------------------------------------------------------------------------------
# queries: tokens, split words, formulas
# ------------------------------------------------------------------------------------------------
def test_split_word_is_averaged_and_reported(demo: core.EmbeddingMatrix, kv_minilm: Any) -> None:
    res = search.neighbors(demo, "unbelievably", k=5)
    term = res.query.terms[0]
    assert [p.token for p in term.pieces] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert "mean of 5 pieces" in res.query.notes()[0]
    mean = np.mean([kv_minilm[p.token] for p in term.pieces], axis=0)
    _same_ranking(_pairs(res), kv_minilm.similar_by_vector(mean, topn=5))
    # A word the tokenizer lower-cases is its token, and is left out of its own neighbours.
    hello = search.neighbors(demo, "Hello", k=3)
    assert hello.query.terms[0].single and "hello" not in [n.token for n in hello.neighbors]


@pytest.mark.parametrize(("text", "expected"), [
    ("king - man + woman", [(1.0, "king"), (-1.0, "man"), (1.0, "woman")]),
    ("-king+queen", [(-1.0, "king"), (1.0, "queen")]),
    ('"new york" - usa + france', [(1.0, "new york"), (-1.0, "usa"), (1.0, "france")]),
    ("0.5*king - 2 * queen", [(0.5, "king"), (-2.0, "queen")]),
    ("[CLS] + don't", [(1.0, "[CLS]"), (1.0, "don't")]),
])
def test_parse_formula(text: str, expected: list[tuple[float, str]]) -> None:
    assert search.parse_formula(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("king -", "ends with an operator"), ("king + - man", "two operators in a row"),
    ("king man - woman", "expected + or - between 'king' and 'man'"), ("(king - man)", "brackets"),
    ("*king", "must follow a number"), ("x*king", "is not a number"), ('"king - man', "not closed"),
    ("0*king", "non-zero"), ("  ", "empty"), ("king - ''", "empty quoted term"),
])
def test_parse_formula_errors(text: str, message: str) -> None:
    with pytest.raises(ParameterError, match=re.escape(message)):
        search.parse_formula(text)


def test_unknown_terms_raise_with_suggestions(lee: tuple[core.EmbeddingMatrix, Any],
                                              demo: core.EmbeddingMatrix) -> None:
    m, _ = lee
    with pytest.raises(TokenNotFound) as err:
        search.neighbors(m, "police - goverment", k=3)
    assert err.value.token == "goverment" and "government" in err.value.suggestions
    with pytest.raises(TokenNotFound, match="maps it to"):
        search.neighbors(demo, "🦄", k=3)


def test_bad_arguments(demo: core.EmbeddingMatrix) -> None:
    for k in (0, -1, len(demo) + 1):
        with pytest.raises(ParameterError, match="k must be"):
            search.neighbors(demo, "king", k=k)
    with pytest.raises(ParameterError, match="metric must be"):
        search.neighbors(demo, "king", metric="manhattan")
    with pytest.raises(ParameterError, match="method must be"):
        search.analogy(demo, "king - man", method="sub")
    with pytest.raises(ParameterError, match="3CosMul needs at least one positive"):
        search.analogy(demo, "-king", method="mul")
    with pytest.raises(ParameterError, match="empty"):
        search.similarity_matrix(demo, [])
    with pytest.raises(ParameterError, match="empty"):
        search.neighbors_many(demo, [])
    with pytest.raises(ParameterError, match="k must be at most the 4 candidate rows"):
        search.neighbors(demo, "king", k=5, filters=Filters(first_n=4))
    with pytest.raises(ParameterError, match="vectors of 384 values"):
        search.knn(demo, np.zeros(3), k=2)


# ------------------------------------------------------------------------------------------------
# similarity tables
# ------------------------------------------------------------------------------------------------
def test_similarity_matrix_equals_gensim_and_reports_missing(demo: core.EmbeddingMatrix, kv_minilm: Any) -> None:
    words = ["dog", "cat", "pet", "car", "🦄"]
    table = search.similarity_matrix(demo, words)
    assert table.labels == ["dog", "cat", "pet", "car"]
    assert [e.token for e in table.missing] == ["🦄"]
    for i, a in enumerate(table.labels):
        for j, b in enumerate(table.labels):
            assert table.matrix[i, j] == pytest.approx(float(kv_minilm.similarity(a, b)), abs=1e-6)
    assert search.similarity(demo, "dog", "cat") == pytest.approx(float(kv_minilm.similarity("dog", "cat")),
                                                                       abs=1e-6)
    assert not table.matrix.flags.writeable
    assert table.to_json()["tokens"] == table.labels


def test_clustered_order_keeps_groups_together(demo: core.EmbeddingMatrix) -> None:
    words = ["dog", "car", "apple", "cat", "truck", "banana", "puppy", "bus", "cherry"]
    table = search.similarity_matrix(demo, words, cluster=True)
    assert table.clustered and sorted(table.labels) == sorted(words)
    pos = {w: i for i, w in enumerate(table.labels)}
    for group in (["dog", "cat", "puppy"], ["car", "truck", "bus"], ["apple", "banana", "cherry"]):
        spots = sorted(pos[w] for w in group)
        assert spots[-1] - spots[0] == 2, table.labels
    # The matrix follows the new order.
    i, j = pos["dog"], pos["cat"]
    assert table.matrix[i, j] == pytest.approx(search.similarity(demo, "dog", "cat"), abs=1e-6)


# ------------------------------------------------------------------------------------------------
# charts
# ------------------------------------------------------------------------------------------------
def test_chart_builders() -> None:
    d = charts.neighbor_bars(["kings", "queen"], [0.69, 0.63], "cosine").to_dict()
    assert d["mark"]["type"] == "bar"
    assert d["encoding"]["y"]["field"] == "label" and d["encoding"]["x"]["field"] == "score"
    bars = [(r["rank"], r["token"], r["score"]) for r in next(iter(d["datasets"].values()))]
    assert bars == [(1, "kings", 0.69), (2, "queen", 0.63)]
    d = charts.pairs_scatter([7.35, 1.0, 5.0], [0.5, float("nan"), 0.3], ["tiger", "a", "b"], ["cat", "b", "c"]).to_dict()
    assert d["mark"]["type"] == "circle"
    assert (d["encoding"]["x"]["field"], d["encoding"]["y"]["field"]) == ("human", "model")
    data = next(iter(d["datasets"].values()))
    assert len(data) == 2  # the NaN (out-of-vocabulary) pair is left out
    d = charts.accuracy_bars(["a", "b"], [3, 0], [4, 0]).to_dict()
    assert d["mark"]["type"] == "bar" and d["encoding"]["x"]["field"] == "accuracy"
    assert [r["accuracy"] for r in next(iter(d["datasets"].values()))] == [0.75, 0.0]
    png = charts.chart_png(charts.similarity_heatmap(["a", "b"], np.array([[1.0, 0.2], [0.2, 1.0]])))
    assert png.startswith(b"\x89PNG")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and "--json" in argv else out), err


def test_cli_neighbors_analogy_similarity(capsys: pytest.CaptureFixture[str], kv_minilm: Any) -> None:
    code, payload, _ = _cli(capsys, "neighbors", "demo", "king", "-k", "5", "--json")
    assert code == 0 and payload["query"] == "king"
    assert [set(n) >= {"token", "id", "score"} for n in payload["neighbors"]] == [True] * 5
    _same_ranking([(n["token"], n["score"]) for n in payload["neighbors"]], kv_minilm.most_similar("king", topn=5))

    code, payload, _ = _cli(capsys, "analogy", "demo", "king - man + woman", "-k", "3", "--method", "mul", "--json")
    assert code == 0 and payload["query"] == "king - man + woman"
    _same_ranking([(r["token"], r["score"]) for r in payload["results"]],
                  kv_minilm.most_similar_cosmul(positive=["king", "woman"], negative=["man"], topn=3))

    code, payload, err = _cli(capsys, "similarity", "demo", "dog", "cat", "🦄", "--json")
    assert code == 0 and payload["tokens"] == ["dog", "cat"]
    assert payload["matrix"][0][1] == pytest.approx(float(kv_minilm.similarity("dog", "cat")), abs=1e-6)
    assert "🦄" in err

    code, text, _ = _cli(capsys, "neighbors", "demo", "king", "-k", "3")
    assert code == 0 and "kings" in text


def test_cli_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["neighbors", "demo", "king -"], ["neighbors", "demo", "king", "-k", "0"],
                 ["analogy", "demo", "king - 🦄"], ["similarity", "demo", "🦄", "🦜"]):
        code, _, err = _cli(capsys, *argv)
        assert code == 2 and err.startswith("embedscope: error:"), (argv, err)


def test_cli_doesnt_match(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, payload, _ = _cli(capsys, "doesnt-match", "demo", "breakfast", "cereal", "dinner", "lunch", "--json")
    assert code == 0 and payload["odd"] == "cereal" and len(payload["ranking"]) == 4


def test_zero_and_nan_rows(lee: tuple[core.EmbeddingMatrix, Any]) -> None:
    m, _ = lee
    vecs = np.array(m.vectors[:200])
    vecs[5] = 0.0
    vecs[7] = np.nan
    small = core.EmbeddingMatrix(vecs, m.index_to_key[:200])
    ids, scores = search.knn(small, vecs[10], k=199)
    assert 7 not in ids[0, :198] and np.isfinite(scores[0, :198]).all()
    assert scores[0][list(ids[0]).index(5)] == 0.0
    with pytest.raises(ParameterError, match="NaN"):
        search.knn(small, vecs[7], k=3)


def test_memory_stays_bounded_on_a_128k_row_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 queries against 128,256 rows: the score matrix would be 154 MB unchunked."""
    import tracemalloc

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((128_256, 32), dtype=np.float32)
    m = core.EmbeddingMatrix(vecs, [f"t{i}" for i in range(len(vecs))])
    queries = vecs[:300] + 0.01
    m.norms  # noqa: B018 - computed once per matrix, not per call
    monkeypatch.setattr(_engine, "_SCORE_ELEMS", 1 << 20)
    tracemalloc.start()
    try:
        ids, _ = search.knn(m, queries, k=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak
    np.testing.assert_array_equal(ids[:, 0], np.arange(300))
