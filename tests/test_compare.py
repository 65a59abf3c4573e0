"""Before/after comparison (issue 7) on real MiniLM rows, checked against independent oracles: scipy's
orthogonal Procrustes and cosine distance, scikit-learn's brute-force neighbours, gensim ``KeyedVectors``,
torch's bf16/fp16/int8 conversions, the Hugging Face tokenizer, and the safetensors library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core
from core import charts
from core import compare as cp
from core.errors import Cancelled, OutputExistsError, ParameterError, TokenNotFound

K = 10
ROWS = np.arange(2000, 5000)  # 3,000 whole words and pieces of MiniLM's vocabulary


@pytest.fixture(scope="module")
def small(demo: core.EmbeddingMatrix) -> core.EmbeddingMatrix:
    """3,000 rows of MiniLM as their own matrix (a copy, so tests may derive others from it)."""
    return core.EmbeddingMatrix(np.array(demo.vectors[ROWS]), [demo.index_to_key[i] for i in ROWS])


@pytest.fixture(scope="module")
def rotation() -> np.ndarray:
    from scipy.stats import ortho_group

    return np.asarray(ortho_group.rvs(384, random_state=11))


@pytest.fixture(scope="module")
def rotated(small: core.EmbeddingMatrix, rotation: np.ndarray) -> core.EmbeddingMatrix:
    return small.with_vectors((np.asarray(small.vectors, dtype=np.float64) @ rotation).astype(np.float32))


@pytest.fixture(scope="module")
def perturbed(small: core.EmbeddingMatrix) -> tuple[core.EmbeddingMatrix, list[str]]:
    rng = np.random.default_rng(3)
    chosen = np.sort(rng.choice(len(small), size=20, replace=False))
    v = np.array(small.vectors)
    v[chosen] += rng.standard_normal((20, small.dim)).astype(np.float32) * np.float32(0.15)
    return small.with_vectors(v), [small.index_to_key[i] for i in chosen]


def _sklearn_neighbors(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest rows by cosine among the rows of x, itself left out (scikit-learn, brute force)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 2, metric="cosine", algorithm="brute").fit(x)
    dist, idx = nn.kneighbors(x)
    out_i = np.empty((x.shape[0], k + 1), dtype=np.int64)
    out_d = np.empty((x.shape[0], k + 1))
    for r in range(x.shape[0]):
        keep = idx[r] != r
        out_i[r], out_d[r] = idx[r][keep][:k + 1], dist[r][keep][:k + 1]
    return out_i, out_d


# -- vocabulary ----------------------------------------------------------------------------------------
def test_vocabulary_match_by_token_string(small: core.EmbeddingMatrix) -> None:
    keys = list(small.index_to_key)
    b = core.EmbeddingMatrix(np.array(small.vectors[500:2800][::-1]), [*keys[500:2800][::-1]])
    extra = core.EmbeddingMatrix(np.vstack([b.vectors, np.ones((2, 384), np.float32)]),
                                 [*b.index_to_key, "zzz-only-b", "yyy-only-b"])
    v = cp.match_vocabulary(small, extra)
    shared = set(keys) & set(extra.index_to_key)
    assert set(v.tokens) == shared and v.shared == len(shared) == 2300
    assert set(v.only_a) == set(keys) - shared and set(v.only_b) == {"zzz-only-b", "yyy-only-b"}
    assert [small.index_to_key[i] for i in v.rows_a] == list(v.tokens)
    assert [extra.index_to_key[i] for i in v.rows_b] == list(v.tokens)
    assert list(v.rows_a) == sorted(v.rows_a)  # in A's row order


# -- the correctness checks ------------------------------------------------------------------------
def test_a_matrix_against_itself_has_zero_drift_and_jaccard_one(small: core.EmbeddingMatrix) -> None:
    copy = core.EmbeddingMatrix(np.array(small.vectors), small.index_to_key)
    c = cp.compare(small, copy, k=K)
    assert c.shared == c.compared == len(small) and c.only_a == c.only_b == 0
    assert c.drift is not None and np.all(c.drift == 0.0)
    assert np.all(c.jaccard == 1.0)
    assert not c.aligned and "B is A" in c.alignment
    s = c.summary()
    assert s.mean_drift == 0.0 and s.changed_share == 0.0 and s.median_jaccard == 1.0 and s.mean_norm_change == 0.0


def test_an_unchanged_release_passes_with_a_note_that_a_and_b_are_identical(small: core.EmbeddingMatrix) -> None:
    c = cp.compare(small, core.EmbeddingMatrix(np.array(small.vectors), small.index_to_key), k=K)
    assert c.identical and "A and B are identical" in c.notes[0]
    assert c.to_json()["identical"] is True
    # the neighbours are the brute-force oracle's in both A and B
    want, dist = _sklearn_neighbors(np.asarray(small.vectors, np.float64), K)
    clear = dist[:, K] - dist[:, K - 1] > 1e-6  # rows whose k-th and (k+1)-th neighbours tie may list either
    assert clear.mean() > 0.95 and np.array_equal(c.neighbors_a, c.neighbors_b)
    assert np.array_equal(np.sort(c.neighbors_b[clear], axis=1), np.sort(want[clear, :K], axis=1))
    assert cp.compare(small, small, k=K, allow_same=True).identical  # the old keyword is still accepted


def test_rotated_copy_aligns_to_zero_drift_with_unchanged_neighborhoods(
        small: core.EmbeddingMatrix, rotated: core.EmbeddingMatrix, rotation: np.ndarray) -> None:
    from scipy.linalg import orthogonal_procrustes

    c = cp.compare(small, rotated, k=K)
    assert c.aligned and "Procrustes" in c.alignment and c.anchors == len(small)
    assert c.drift is not None and float(c.drift.max()) <= 1e-5
    assert np.all(c.jaccard == 1.0)  # cosine neighbourhoods are rotation-invariant
    # the rotation is scipy's Procrustes solution on unit rows, and it recovers Q
    ua = small.vectors / np.linalg.norm(small.vectors, axis=1, keepdims=True)
    ub = rotated.vectors / np.linalg.norm(rotated.vectors, axis=1, keepdims=True)
    ref, _ = orthogonal_procrustes(ua.astype(np.float64), ub.astype(np.float64))
    assert c.rotation is not None
    np.testing.assert_allclose(c.rotation, ref, atol=1e-6)
    np.testing.assert_allclose(c.rotation, rotation, atol=1e-4)

    raw = cp.compare(small, rotated, k=K, align=False)
    assert not raw.aligned and "turned off" in raw.alignment
    assert raw.drift is not None and float(raw.drift.mean()) > 0.5 and float(np.median(raw.drift)) > 0.5
    assert np.all(raw.jaccard == 1.0)


def test_twenty_perturbed_rows_top_the_moved_most_table(
        small: core.EmbeddingMatrix, perturbed: tuple[core.EmbeddingMatrix, list[str]]) -> None:
    b, chosen = perturbed
    c = cp.compare(small, b, k=K)
    assert c.aligned
    top = c.table(top=20)
    assert set(top["token"]) == set(chosen)
    assert list(top["drift"]) == sorted(top["drift"], reverse=True)
    rest = c.table(top=None).iloc[20:]
    assert float(rest["drift"].max()) < float(top["drift"].min())
    moved = c.moved(20)
    assert {r["token"] for r in moved} == set(chosen)
    assert set(moved[0]) == {"token", "drift", "jaccard", "neighbors_a", "neighbors_b"}


def test_drift_and_jaccard_match_scipy_and_sklearn(small: core.EmbeddingMatrix,
                                                   perturbed: tuple[core.EmbeddingMatrix, list[str]]) -> None:
    from scipy.spatial.distance import cosine

    b, _ = perturbed
    c = cp.compare(small, b, k=K)
    assert c.rotation is not None
    for i in (0, 17, 1234, 2999):
        want = cosine(np.asarray(small.vectors[i], np.float64) @ c.rotation, np.asarray(b.vectors[i], np.float64))
        assert c.drift is not None and c.drift[i] == pytest.approx(want, abs=1e-9)
    ia, da = _sklearn_neighbors(np.asarray(small.vectors, np.float64), K)
    ib, db = _sklearn_neighbors(np.asarray(b.vectors, np.float64), K)
    # rows whose k-th and (k+1)-th neighbours tie (within float32 noise) may list either
    clear = (da[:, K] - da[:, K - 1] > 1e-6) & (db[:, K] - db[:, K - 1] > 1e-6)
    assert clear.mean() > 0.95
    want_j = np.array([len(set(x[:K]) & set(y[:K])) / len(set(x[:K]) | set(y[:K])) for x, y in zip(ia, ib, strict=True)])
    np.testing.assert_allclose(c.jaccard[clear], want_j[clear])
    assert np.array_equal(np.sort(c.neighbors_a[clear], axis=1), np.sort(ia[clear, :K], axis=1))
    assert 0 < float(np.mean(c.jaccard < 1)) < 1


def test_jaccard_helper_against_python_sets() -> None:
    rng = np.random.default_rng(0)
    a = np.stack([rng.choice(50, 8, replace=False) for _ in range(200)])
    b = np.stack([rng.choice(50, 8, replace=False) for _ in range(200)])
    b[:, -2:] = -1  # padding is ignored
    want = [len(set(x) & (set(y) - {-1})) / len(set(x) | (set(y) - {-1})) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(cp.jaccard(a, b), want)


def test_a_real_finetune_moves_corpus_tokens_and_needs_no_alignment(demo: core.EmbeddingMatrix, demo_dir: Path,
                                                                     tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    from core import finetune as ft

    run = ft.finetune(demo, ft.demo_corpus(), ft.SGNSConfig(epochs=1, watch_size=0), tmp_path / "run")
    tuned = core.load(run.path)
    rows = cp.corpus_rows(demo, ft.demo_corpus())
    # the corpus tokens, independently: the model's own tokenizer on every line
    tok = Tokenizer.from_file(str(demo_dir / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    lines = [ln for ln in ft.demo_corpus().read_text(encoding="utf-8").splitlines() if ln.strip()]
    want = {i for ln in lines for i in tok.encode(ln, add_special_tokens=False).ids} - {demo.get_index("[UNK]")}
    assert set(rows.tolist()) == want

    others = [demo.index_to_key[i] for i in range(1996, 30522, 15)]
    sub = sorted({demo.index_to_key[i] for i in rows} | set(others))
    c = cp.compare(demo, tuned, k=K, tokens=sub)
    assert not c.aligned and "fine-tune of A" in c.alignment  # read from the run card
    corpus = {demo.index_to_key[i] for i in rows}
    top = c.table(top=50)
    assert set(top["token"]) <= corpus
    assert c.drift is not None
    untouched = np.array([t not in corpus for t in c.tokens])
    assert np.all(c.drift[untouched] == 0.0)  # rows the corpus does not touch come out bit for bit
    only_corpus = c.table(top=None, rows_a=rows)
    assert set(only_corpus["token"]) == corpus & set(c.tokens)
    # turning alignment on still works, and is said
    forced = cp.compare(demo, tuned, k=K, tokens=sub, align=True)
    assert forced.aligned and forced.anchors == len(demo)


# -- bad input ---------------------------------------------------------------------------------------------
def test_bad_inputs_have_clear_messages(small: core.EmbeddingMatrix) -> None:
    other = core.EmbeddingMatrix(np.ones((5, 384), np.float32) * np.arange(5)[:, None], [f"x{i}" for i in range(5)])
    with pytest.raises(ParameterError, match="share no token"):
        cp.compare(small, other)
    narrow = core.EmbeddingMatrix(np.array(small.vectors[:, :100]) + 1, small.index_to_key)
    with pytest.raises(ParameterError, match="384 dimensions and B 100.*neighbourhoods only"):
        cp.compare(small, narrow, align=True)
    with pytest.raises(ParameterError, match="k=3000"):
        cp.compare(small, small.with_vectors(np.array(small.vectors) * 2), k=3000)
    with pytest.raises(ParameterError, match="k=0"):
        cp.compare(small, narrow, k=0)
    with pytest.raises(ParameterError, match="align_on"):
        cp.compare(small, narrow, align_on=0)
    with pytest.raises(ParameterError, match="tokens: none"):
        cp.compare(small, narrow, tokens=["not-a-token"])


def test_different_dimensions_compare_by_neighborhoods_only(small: core.EmbeddingMatrix) -> None:
    narrow = core.EmbeddingMatrix(np.array(small.vectors[:, :100]), small.index_to_key)
    c = cp.compare(small, narrow, k=K)
    assert not c.aligned and not c.has_drift and c.drift is None
    assert "neighbourhoods only" in c.alignment
    assert 0 < float(np.median(c.jaccard)) < 1
    t = c.table(top=5)
    assert list(t["jaccard"]) == sorted(t["jaccard"])  # without drift the table sorts by Jaccard
    assert c.to_json()["mean_drift"] is None and c.moved(1)[0]["drift"] is None
    assert cp.token_detail(c, small, narrow, t["token"].iloc[0]).difference is None
    with pytest.raises(ParameterError, match="same dimension"):
        cp.joint_projection(c, small, narrow)


def test_progress_and_cancel(small: core.EmbeddingMatrix, rotated: core.EmbeddingMatrix) -> None:
    seen: list[float] = []
    cp.compare(small, rotated, progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 4
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        cp.compare(small, rotated, cancel=lambda: next(calls) > 3)


# -- table, detail, projection ------------------------------------------------------------------------------
def test_table_sorts_and_filters(small: core.EmbeddingMatrix, perturbed: tuple[core.EmbeddingMatrix, list[str]]) -> None:
    b, chosen = perturbed
    c = cp.compare(small, b, k=K)
    by_j = c.table("jaccard", top=50)
    assert list(by_j["jaccard"]) == sorted(by_j["jaccard"])
    assert list(c.table("token", top=5)["token"]) == sorted(small.index_to_key)[:5]
    needle = chosen[0][:3]
    hits = c.table(top=None, contains=needle.upper())
    assert len(hits) and all(needle.casefold() in t.casefold() for t in hits["token"])
    rows = [small.get_index(t) for t in chosen[:5]]
    assert set(c.table(top=None, rows_a=rows)["token"]) == set(chosen[:5])
    with pytest.raises(ParameterError, match="sort="):
        c.table("nope")


def test_token_detail_matches_gensim(small: core.EmbeddingMatrix,
                                     perturbed: tuple[core.EmbeddingMatrix, list[str]]) -> None:
    from gensim.models import KeyedVectors

    b, chosen = perturbed
    c = cp.compare(small, b, k=K)
    token = chosen[0]
    det = cp.token_detail(c, small, b, token)
    for m, got in ((small, det.neighbors_a), (b, det.neighbors_b)):
        kv = KeyedVectors(m.dim)
        kv.add_vectors(list(m.index_to_key), np.asarray(m.vectors))
        want = kv.most_similar(token, topn=K)
        assert [t for t, _ in got] == [t for t, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert c.rotation is not None and det.difference is not None
    want_diff = np.asarray(b[token], np.float64) - np.asarray(small[token], np.float64) @ c.rotation
    np.testing.assert_allclose(det.difference, want_diff, atol=1e-9)
    assert det.drift == pytest.approx(float(c.drift[c.position(token)]))  # type: ignore[index]
    assert list(det.frame().columns) == ["rank", "in A", "cosine in A", "in B", "cosine in B"]
    with pytest.raises(TokenNotFound, match="not among the compared"):
        cp.token_detail(c, small, b, "definitely-not-there")


def test_joint_projection_of_a_rotated_copy_puts_each_token_on_itself(
        small: core.EmbeddingMatrix, rotated: core.EmbeddingMatrix) -> None:
    c = cp.compare(small, rotated, k=K)
    follow = [small.index_to_key[5], small.index_to_key[50]]
    jp = cp.joint_projection(c, small, rotated, follow, sample=300, top_moved=3)
    f = jp.frame
    assert len(f) == 2 * (300 + 5) and set(f["side"]) == {"A", "B"}
    assert set(follow) <= set(f.loc[f["selected"], "token"]) and f["selected"].sum() == 2 * 5
    arrows = jp.arrows()
    assert len(arrows) == 5
    span = float(np.ptp(f["x"]))
    assert np.all(np.hypot(arrows["x2"] - arrows["x"], arrows["y2"] - arrows["y"]) < 1e-4 * span)
    assert "PCA fitted once" in jp.caption
    spec = charts.joint_projection_chart(f, axis_titles=jp.axis_titles).to_dict()
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert marks[:2] == ["circle", "rule"] and "text" in marks
    rule = spec["layer"][1]["encoding"]
    assert {"x", "y", "x2", "y2"} <= set(rule)
    drawn = spec["datasets"][spec["layer"][1]["data"]["name"]]  # one arrow per followed token, A to B
    assert sorted(r["token"] for r in drawn) == sorted(arrows["token"])
    assert len(spec["datasets"][spec["layer"][0]["data"]["name"]]) == len(f)  # every point of both sides
    side = charts.joint_projection_chart(f, mode="side").to_dict()
    assert len(side["hconcat"]) == 2 and side["resolve"]["scale"] == {"x": "shared", "y": "shared"}
    with pytest.raises(TokenNotFound):
        cp.joint_projection(c, small, rotated, ["no-such-token"])


# -- benchmarks --------------------------------------------------------------------------------------------
def test_benchmark_deltas_match_gensim(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    import logging

    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    logging.getLogger("gensim").setLevel(logging.WARNING)
    v = np.array(demo.vectors)
    rng = np.random.default_rng(0)
    hit = [demo.get_index(w) for w in ("king", "queen", "man", "woman", "paris", "france", "tiger", "cat")]
    v[hit] += rng.standard_normal((len(hit), demo.dim)).astype(np.float32) * 0.3
    b = demo.with_vectors(v)
    questions = tmp_path / "q.txt"
    questions.write_text(": family\nman woman king queen\nboy girl brother sister\n: capitals\n"
                         "athens greece paris france\nberlin germany rome italy\n", encoding="utf-8")
    deltas = cp.benchmark_deltas(demo, b, [questions], [datapath("wordsim353.tsv")])
    assert [d.metric for d in deltas] == ["analogy accuracy", "Spearman", "Pearson"]
    for m, which in ((demo, "a"), (b, "b")):
        kv = KeyedVectors(m.dim)
        kv.add_vectors(list(m.index_to_key), np.asarray(m.vectors))
        acc, _ = kv.evaluate_word_analogies(str(questions))
        (pearson, _), (spearman, _), _ = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
        assert getattr(deltas[0], which) == pytest.approx(acc)
        assert getattr(deltas[1], which) == pytest.approx(spearman, abs=1e-6)
        assert getattr(deltas[2], which) == pytest.approx(pearson, abs=1e-6)
    assert deltas[1].delta == pytest.approx(deltas[1].b - deltas[1].a)
    frame = cp.deltas_frame(deltas)
    assert list(frame.columns[:5]) == ["benchmark", "metric", "A", "B", "delta"] and len(frame) == 3
    with pytest.raises(ParameterError, match="at least one"):
        cp.benchmark_deltas(demo, b)


# -- quantisation ------------------------------------------------------------------------------------------
def test_quantised_copies_match_torch(small: core.EmbeddingMatrix) -> None:
    import warnings

    import torch

    x = torch.from_numpy(np.array(small.vectors))
    assert np.array_equal(cp.quantize(small, "bf16").vectors, x.to(torch.bfloat16).float().numpy())
    assert np.array_equal(cp.quantize(small, "fp16").vectors, x.half().float().numpy())
    scale = x.abs().amax(dim=1).numpy() / np.float32(127)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(x, torch.from_numpy(scale.astype(np.float64)),
                                       torch.zeros(len(small), dtype=torch.int64), 0, torch.qint8)
    ours = np.rint(cp.quantize(small, "int8").vectors / scale[:, None])
    theirs = q.int_repr().numpy()
    differ = ours != theirs
    assert differ.mean() < 1e-4  # torch multiplies by 1/scale; we divide, so exact halves may round apart
    exact = np.asarray(small.vectors, np.float64)[differ] / scale[np.nonzero(differ)[0]].astype(np.float64)
    assert np.all(np.abs(np.abs(exact - np.trunc(exact)) - 0.5) < 1e-4)
    assert np.abs(ours).max() <= 127
    err = np.abs(cp.quantize(small, "int8").vectors - small.vectors)
    assert np.all(err <= scale[:, None] / 2 + 1e-7)


def test_quantisation_impact_orders_the_formats(small: core.EmbeddingMatrix) -> None:
    seen: list[float] = []
    r = cp.quantization_impact(small, progress=lambda f, msg: seen.append(f))
    assert [i.format for i in r.impacts] == ["fp16", "bf16", "int8"] and seen[-1] == 1.0
    drift = [i.comparison.summary().mean_drift for i in r.impacts]
    assert drift[0] is not None and drift[1] is not None and drift[2] is not None
    assert 0 < drift[0] < drift[1] < drift[2] < 1e-3
    jac = [i.comparison.summary().mean_jaccard for i in r.impacts]
    assert 1.0 >= jac[0] >= jac[1] >= jac[2] > 0.8
    assert all(not i.comparison.aligned and i.format in i.comparison.alignment for i in r.impacts)
    f = r.frame()
    assert list(f["format"]) == ["fp16", "bf16", "int8"]
    assert f["saved"].tolist() == pytest.approx([0.5, 0.5, 1 - (3000 * 384 + 3000 * 4) / (3000 * 384 * 4)])
    q = cp.quantize(small, "int8")
    for reason in (cp.shared_space(small, q), cp.shared_space(q, small)):  # one space, in either order
        assert reason is not None and "int8" in reason  # the reason names the copy's format
    with pytest.raises(ParameterError, match="format='fp8'"):
        cp.quantization_impact(small, ["fp8"])


def test_quantised_export_reopens_and_is_read_by_safetensors(small: core.EmbeddingMatrix, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    for fmt, tag in (("fp16", "F16"), ("bf16", "BF16")):
        done = cp.export_quantized(small, fmt, tmp_path / fmt)
        back = core.load(done.target)
        assert back.index_to_key == small.index_to_key and back.provenance.dtype == {"fp16": "float16",
                                                                                     "bf16": "bfloat16"}[fmt]
        assert np.array_equal(back.vectors, cp.quantize(small, fmt).vectors)
        raw = json.loads((done.target / "model.safetensors").read_bytes()[8:8 + int.from_bytes(
            (done.target / "model.safetensors").read_bytes()[:8], "little")])
        assert raw["word_embeddings.weight"]["dtype"] == tag
        with safe_open(str(done.target / "model.safetensors"), framework="pt") as f:
            assert str(f.get_tensor("word_embeddings.weight").dtype) == f"torch.{ {'F16': 'float16', 'BF16': 'bfloat16'}[tag]}"
    done = cp.export_quantized(small, "int8", tmp_path / "int8")
    t = load_file(str(done.target / "model.safetensors"))
    assert t["word_embeddings.weight.int8"].dtype == np.int8
    deq = t["word_embeddings.weight.int8"].astype(np.float32) * t["word_embeddings.weight.scale"][:, None]
    assert np.array_equal(deq, cp.quantize(small, "int8").vectors)
    assert (done.target / "model.safetensors").stat().st_size < small.vectors.nbytes / 3.5
    with pytest.raises(OutputExistsError):
        cp.export_quantized(small, "fp16", tmp_path / "fp16")


# -- charts --------------------------------------------------------------------------------------------
def test_compare_charts(small: core.EmbeddingMatrix, perturbed: tuple[core.EmbeddingMatrix, list[str]]) -> None:
    b, _ = perturbed
    c = cp.compare(small, b, k=K)
    assert c.drift is not None
    h = charts.drift_histogram(c.drift).to_dict()
    assert h["mark"]["type"] == "bar" and h["encoding"]["x"]["bin"] == "binned" and "x2" in h["encoding"]
    assert sum(r["tokens"] for r in h["datasets"][h["data"]["name"]]) == c.compared
    j = charts.jaccard_bars(c.jaccard, c.k).to_dict()
    rows = j["datasets"][j["data"]["name"]]
    assert len(rows) == K + 1 and sum(r["tokens"] for r in rows) == c.compared
    assert rows[-1]["tokens"] == int(np.sum(c.jaccard == 1.0))
    s = charts.drift_jaccard_scatter(c.table(top=None), limit=1000).to_dict()
    data = s["datasets"][s["data"]["name"]]
    assert len(data) == 1000 and s["mark"]["type"] == "circle"
    assert {r["token"] for r in data} >= set(c.table(top=250)["token"])  # the most moved are always shown
    det = cp.token_detail(c, small, b, c.tokens[int(c.order()[0])])
    assert det.vector_a is not None and det.vector_b is not None
    v = charts.vector_difference_chart(det.vector_a, det.vector_b, top=12).to_dict()
    vals = [abs(r["difference"]) for r in v["datasets"][v["data"]["name"]]]
    assert len(vals) == 12 and vals == sorted(vals, reverse=True)


# -- CLI -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(small: core.EmbeddingMatrix, perturbed: tuple[core.EmbeddingMatrix, list[str]],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from core import export

    d = tmp_path_factory.mktemp("compare_cli")
    narrow = core.EmbeddingMatrix(np.array(small.vectors[:, :64]), small.index_to_key)
    return {name: export.export(m, d / name, "npy").target
            for name, m in (("a", small), ("b", perturbed[0]), ("narrow", narrow))}


def test_cli_compare_json_contract(exported: dict[str, Path], perturbed: tuple[core.EmbeddingMatrix, list[str]],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    assert main(["compare", str(exported["a"]), str(exported["b"]), "--top", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"shared", "only_a", "only_b", "aligned", "mean_drift", "median_jaccard", "moved"} <= set(out)
    assert out["shared"] == 3000 and out["only_a"] == out["only_b"] == 0 and out["aligned"] is True
    assert {r["token"] for r in out["moved"]} == set(perturbed[1])
    assert all(set(r) == {"token", "drift", "jaccard", "neighbors_a", "neighbors_b"} for r in out["moved"])
    assert all(len(r["neighbors_a"]) == 10 for r in out["moved"])

    assert main(["compare", str(exported["a"]), str(exported["b"]), "--no-align", "-k", "5", "--top", "3",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aligned"] is False and len(out["moved"]) == 3 and len(out["moved"][0]["neighbors_b"]) == 5

    assert main(["compare", str(exported["a"]), str(exported["narrow"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aligned"] is False and out["mean_drift"] is None and "neighbourhoods only" in out["alignment"]

    assert main(["compare", str(exported["a"]), str(exported["b"])]) == 0
    text = capsys.readouterr().out
    assert "3,000 shared" in text and "Procrustes" in text


def test_cli_bad_inputs_exit_2(exported: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    assert main(["compare", str(exported["a"]), str(exported["narrow"]), "--align"]) == 2
    assert "384 dimensions and B 64" in capsys.readouterr().err


def test_cli_compare_demo_with_itself_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    assert main(["compare", "demo", "demo", "--json", "--top", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"shared", "only_a", "only_b", "aligned", "mean_drift", "median_jaccard", "moved", "notes"} <= set(out)
    assert out["identical"] is True and out["shared"] == out["compared"] == 30522
    assert out["mean_drift"] == 0.0 and out["summary"]["max_drift"] == 0.0
    assert out["median_jaccard"] == 1.0 and out["summary"]["changed_share"] == 0.0  # Jaccard 1.0 for every token
    assert all(r["drift"] == 0.0 and r["jaccard"] == 1.0 for r in out["moved"])
    assert any("A and B are identical" in n for n in out["notes"])


def test_cli_quantize(exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    out_dir = tmp_path / "bf16"
    assert main(["quantize", str(exported["a"]), "--formats", "bf16", "int8", "--out", str(out_dir), "--format",
                 "bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["format"] for f in out["formats"]] == ["bf16", "int8"]
    assert out["formats"][0]["mean_drift"] < out["formats"][1]["mean_drift"]
    assert core.load(out_dir).provenance.dtype == "bfloat16"
    assert main(["quantize", str(exported["a"]), "--out", str(tmp_path / "x")]) == 2
    assert "--out and --format" in capsys.readouterr().err


# -- approximate neighbours (issue 17) ------------------------------------------------------------------
def test_search_is_exact_below_the_size_limit_and_said_in_the_output(small: core.EmbeddingMatrix,
                                                                      rotated: core.EmbeddingMatrix,
                                                                      exported: dict[str, Path],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main
    from core.compare._approx import choose_search

    c = cp.compare(small, rotated, k=K)
    assert c.search == "exact" and c.to_json()["search"] == "exact"
    assert not any("approximate" in n for n in c.notes)
    assert choose_search("auto", 262_144, 640, "cpu") == "approximate"
    assert choose_search("auto", 30_522, 384, "cpu") == "exact"
    assert choose_search("exact", 262_144, 640, "cpu") == "exact"
    with pytest.raises(ParameterError, match="search='fast'"):
        cp.compare(small, rotated, search="fast")
    assert main(["compare", str(exported["a"]), str(exported["b"]), "--search", "exact", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search"] == "exact"
    assert main(["quantize", str(exported["a"]), "--formats", "fp16", "--limit", "500", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search"] == "exact"


def _seeded_pair(rows: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A: groups of ~32 tokens around seeded centres, with a decaying spectrum; B = A + small noise."""
    rng = np.random.default_rng(seed)
    spec = (np.arange(1, dim + 1, dtype=np.float32) ** -0.5).astype(np.float32)
    centres = rng.standard_normal((rows // 32, dim), dtype=np.float32) * spec
    a = centres[rng.integers(0, len(centres), rows)]
    a += rng.standard_normal((rows, dim), dtype=np.float32) * (spec * np.float32(0.5))
    return a, a + rng.standard_normal((rows, dim), dtype=np.float32) * (spec * np.float32(0.1))


@pytest.mark.slow
def test_approximate_neighbors_recall_on_a_seeded_20k_sample() -> None:
    """Recall@10 of the approximate search against scikit-learn's brute-force cosine neighbours, every row."""
    va, vb = _seeded_pair(20_000, 640)
    tokens = [f"t{i}" for i in range(len(va))]
    a, b = core.EmbeddingMatrix(va, tokens), core.EmbeddingMatrix(vb, tokens)
    c = cp.compare(a, b, k=K, align=False, search="approximate")
    assert c.search == "approximate" and c.to_json()["search"] == "approximate"
    assert any("neighbours are approximate" in n for n in c.notes)
    for side, m in (("a", va), ("b", vb)):
        want, _ = _sklearn_neighbors(m, K)
        got = c.neighbors_a if side == "a" else c.neighbors_b
        recall = np.mean([np.intersect1d(g, w[:K]).size / K for g, w in zip(got, want, strict=True)])
        assert recall >= 0.99, (side, recall)


def test_approximate_search_runs_in_a_child_that_exits_with_its_memory() -> None:
    """NN-descent builds both graphs in one child process (the server never imports pynndescent or keeps its
    compiled code), and the neighbours agree with the exact search."""
    script = """
import sys, numpy as np, core
from core import compare as cp
rng = np.random.default_rng(3)
va = rng.standard_normal((1500, 16)).astype(np.float32)
vb = va + rng.standard_normal((1500, 16)).astype(np.float32) * 0.01
tokens = [f"t{i}" for i in range(1500)]
a, b = core.EmbeddingMatrix(va, tokens), core.EmbeddingMatrix(vb, tokens)
fast = cp.compare(a, b, k=5, align=False, search="approximate")
exact = cp.compare(a, b, k=5, align=False, search="exact")
recall = np.mean([np.intersect1d(g, w).size / 5 for g, w in zip(fast.neighbors_a, exact.neighbors_a)])
print(fast.search, round(float(recall), 3), "pynndescent" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=True)
    search, recall, imported = out.stdout.split()
    assert search == "approximate" and float(recall) >= 0.95 and imported == "False"


def test_a_cancelled_approximate_search_stops_its_child() -> None:
    from core.compare._approx import approximate_neighbors

    m = core.EmbeddingMatrix(np.random.default_rng(4).standard_normal((3000, 16)).astype(np.float32),
                             [f"t{i}" for i in range(3000)])
    before = set(_children())
    asked = []

    def cancel() -> bool:
        asked.append(1)
        return len(asked) > 3  # once the child is running

    with pytest.raises(Cancelled):
        approximate_neighbors(m, np.arange(3000), 5, cancel=cancel)
    assert set(_children()) <= before  # no child left behind


def _children() -> list[int]:
    """Pids of this process's children that are still running (Linux /proc)."""
    me = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] not in "ZX":
            found.append(int(stat.parent.name))
    return found
