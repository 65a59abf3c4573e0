"""The health audit on real data: MiniLM as published, MiniLM with injected damage, a Gaussian matrix.

Oracles are independent of :mod:`core.audit`: norms of the weights read by safetensors, scikit-learn's PCA
and cosine_similarity, scipy's connected components, pandas' Spearman correlation, wordfreq's own
zipf_frequency, the tokenizers library's BERT pre-tokenizer. The tests may read token names; the scorer
never does.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core
from core import charts
from core.audit import CHECKS, AuditReport, Policy, _neardup, audit, token_categories, write_html
from core.cli import main
from core.errors import Cancelled, OutputExistsError, ParameterError

_UNUSED = re.compile(r"\[unused\d+\]")
# The heavy near-duplicate search is not what these tests look at; turning it off keeps them quick.
_NO_DUPES = Policy.from_mapping({"duplicates": {"enabled": False}})


@pytest.fixture(scope="module")
def base(demo: core.EmbeddingMatrix) -> AuditReport:
    return audit(demo)


@pytest.fixture(scope="module")
def categories(demo: core.EmbeddingMatrix) -> np.ndarray:
    return token_categories(demo)


# -- MiniLM as published ---------------------------------------------------------------------------------
def test_minilm_is_healthy(base: AuditReport) -> None:
    s = base.statuses
    assert [c.id for c in base.checks] == list(CHECKS)
    assert s["numerical"] == "pass" and not base.check("numerical").tokens
    assert s["duplicates"] == "pass" and not base.check("duplicates").tokens
    assert s["tokenizer"] == "pass"
    assert s["anisotropy"] == "pass" and s["rogue_dimensions"] == "pass" and s["norm_frequency"] == "pass"
    # Under-trained reserved tokens and the tail of small norms every trained model has: warnings only.
    assert s["undertrained"] == "warn" and s["norm_outliers"] == "warn"
    assert not base.reaches("fail") and base.reaches("warn")
    assert base.summary() == {k: list(s.values()).count(k) for k in ("pass", "warn", "fail", "n/a")}
    assert base.worst == "warn"
    with pytest.raises(core.errors.ParameterError, match=r"fail_on='often': must be 'fail' or 'warn'"):
        base.reaches("often")


def test_minilm_candidates_are_the_lowest_norms_and_mostly_unused(base: AuditReport,
                                                                   demo_weights: np.ndarray) -> None:
    cands = base.undertrained
    norms = np.linalg.norm(demo_weights.astype(np.float64), axis=1)
    k = math.ceil(0.02 * len(norms))
    assert len(cands) == k
    assert set(cands["id"]) == set(np.argsort(norms, kind="stable")[:k].tolist())
    np.testing.assert_allclose(cands["score"], norms[cands["id"]], rtol=1e-5)
    assert cands["token"].map(lambda t: bool(_UNUSED.fullmatch(t))).mean() > 0.5
    assert "L2 norm" in base.method


def test_scorer_never_reads_token_names(demo: core.EmbeddingMatrix, base: AuditReport) -> None:
    renamed = core.EmbeddingMatrix(np.asarray(demo.vectors), [f"t{i}" for i in range(len(demo))])
    r = audit(renamed, _NO_DUPES)
    assert r.undertrained["id"].tolist() == base.undertrained["id"].tolist()


def test_reference_tokens_come_from_the_tokenizer(demo: core.EmbeddingMatrix, categories: np.ndarray) -> None:
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    refs = {demo.index_to_key[i] for i in np.flatnonzero(categories == "unreachable")}
    unused = {t for t in demo.index_to_key if _UNUSED.fullmatch(t)}
    assert len(unused) == 994 and unused <= refs
    # Every other unreachable token is a piece BERT's normaliser and pre-tokenizer always split apart (CJK
    # characters, punctuation), so no word can end in it.
    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    for t in refs - unused:
        text = t[2:] if t.startswith("##") else t
        assert len(pre.pre_tokenize_str(norm.normalize_str("a" + text))) > 1, t
    assert {demo.index_to_key[i] for i in np.flatnonzero(categories == "special")} == {
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    assert categories[demo.get_index("hello")] == "ok" and categories[demo.get_index("##ing")] == "ok"


def test_tied_scores_follow_the_magikarp_recipe(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                                categories: np.ndarray) -> None:
    from sklearn.decomposition import PCA

    tied = demo.with_vectors(np.asarray(demo.vectors), provenance=replace(demo.provenance, tied=True))
    r = audit(tied, _NO_DUPES)
    assert r.method.startswith("tied embeddings")
    x = demo_weights.astype(np.float64)
    pc = PCA(n_components=1).fit(x).components_[0]
    xw = x - np.outer(x @ pc, pc)
    refs = np.flatnonzero(np.isin(categories, ["unreachable", "declared-unused"]))
    mu = xw[refs].mean(axis=0)
    dist = 1 - xw @ mu / (np.linalg.norm(xw, axis=1) * np.linalg.norm(mu))
    cands = r.undertrained
    np.testing.assert_allclose(cands["score"], dist[cands["id"]], atol=1e-5)
    expected = set(np.argsort(dist, kind="stable")[: len(cands)].tolist())
    assert len(expected & set(cands["id"])) >= 0.99 * len(cands)
    assert cands["token"].map(lambda t: bool(_UNUSED.fullmatch(t))).mean() > 0.5


@pytest.mark.parametrize(("tied", "tensor", "method"), [
    (False, "lm_head.weight", "output embeddings (lm_head.weight): cosine distance"),
    (None, "output.weight", "output embeddings (output.weight): cosine distance"),
    (False, "embeddings.word_embeddings.weight", "input-embedding L2 norm"),
])
def test_the_indicator_follows_the_table_kind(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                              categories: np.ndarray, tied: bool | None, tensor: str,
                                              method: str) -> None:
    """Magikarp's advice: the input norm for an untied input table, the unembedding cosine for output tables."""
    from sklearn.decomposition import PCA

    m = demo.with_vectors(np.asarray(demo.vectors), provenance=replace(demo.provenance, tied=tied, tensor=tensor))
    r = audit(m, _NO_DUPES)
    assert r.method.startswith(method)
    x = demo_weights.astype(np.float64)
    if "cosine" in method:
        pc = PCA(n_components=1).fit(x).components_[0]
        xw = x - np.outer(x @ pc, pc)
        mu = xw[np.flatnonzero(np.isin(categories, ["unreachable", "declared-unused"]))].mean(axis=0)
        expected = 1 - xw @ mu / (np.linalg.norm(xw, axis=1) * np.linalg.norm(mu))
    else:
        expected = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r.undertrained["score"], expected[r.undertrained["id"]], rtol=1e-5, atol=1e-5)


# -- damage injected into a copy of MiniLM ---------------------------------------------------------------
def test_injected_defects_are_each_reported_by_the_right_check(demo: core.EmbeddingMatrix,
                                                               base: AuditReport) -> None:
    v = np.array(demo.vectors)
    ids = {w: demo.get_index(w) for w in ("apple", "banana", "cherry", "house", "garden")}
    v[ids["apple"]] = np.nan
    v[ids["banana"], 3] = np.inf
    v[ids["cherry"]] = 0.0
    v[ids["garden"]] = v[ids["house"]]
    v[:, 7] *= 50
    r = audit(demo.with_vectors(v))
    num, dup, rogue = r.check("numerical"), r.check("duplicates"), r.check("rogue_dimensions")
    assert num.status == "fail" and set(num.tokens) == {"apple", "banana", "cherry"}
    problems = dict(zip(num.data["rows"]["token"], num.data["rows"]["problem"], strict=True))
    assert problems == {"apple": "NaN", "banana": "Inf", "cherry": "all zeros"}
    assert dup.status == "fail" and set(dup.tokens) == {"house", "garden"}
    assert dup.data["exact"] == [sorted([ids["house"], ids["garden"]])] and dup.data["near"] == []
    assert rogue.status == "fail" and rogue.dims == (7,)
    changed = {c for c in CHECKS if r.statuses[c] != base.statuses[c]}
    assert changed == {"numerical", "duplicates", "rogue_dimensions"}
    # The norm checks look past the rogue dimension: the same under-trained tokens come out.
    before, after = set(base.undertrained["id"]), set(r.undertrained["id"])
    assert len(before & after) >= 0.95 * len(before)


def test_near_duplicates_match_an_all_pairs_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(3)
    v = rng.standard_normal((3000, 200)).astype(np.float32)
    v[:, 0] += 3.0  # a common direction, so that the bound has work to do
    v[20] = v[10] + 0.01 * rng.standard_normal(200).astype(np.float32)
    v[31] = v[30] + 0.01 * rng.standard_normal(200).astype(np.float32)
    v[2999] = v[31] + 0.01 * rng.standard_normal(200).astype(np.float32)
    v[41] = 2.0 * v[40]                      # same direction, not equal: a near-duplicate at cosine 1
    v[51] = v[50]                            # exactly equal
    m = core.EmbeddingMatrix(v, [f"w{i}" for i in range(len(v))])
    monkeypatch.setattr(_neardup, "_ROUNDS", 7)  # several calls of the compiled sweep, each on a share of the rows
    dup = audit(m).check("duplicates")
    assert dup.data["exact"] == [[50, 51]]
    sim = cosine_similarity(v.astype(np.float64))
    np.fill_diagonal(sim, 0)
    sim[51, :] = sim[:, 51] = 0              # the exact copy is reported as exact, not again as near
    a, b = np.nonzero(np.triu(sim > 0.999))
    _, labels = connected_components(coo_matrix((np.ones(a.size), (a, b)), shape=sim.shape), directed=False)
    groups = pd.Series(np.arange(len(v))).groupby(labels).apply(list)
    expected = sorted(g for g in groups if len(g) > 1)
    assert dup.data["near"] == expected == [[10, 20], [30, 31, 2999], [40, 41]]
    assert dup.status == "fail"


# -- a Gaussian matrix raises no false alarm -------------------------------------------------------------
def test_seeded_gaussian_matrix_passes_every_check(demo: core.EmbeddingMatrix) -> None:
    rng = np.random.default_rng(0)
    g = demo.with_vectors(rng.standard_normal(demo.shape).astype(np.float32))
    r = audit(g)
    # MiniLM's tokenizer has no chat template: that check does not apply
    expected = {**dict.fromkeys(CHECKS, "pass"), "template_tokens": "n/a"}
    assert r.statuses == expected, {c.id: c.reason for c in r.checks if c.status != "pass"}


def test_small_gaussian_without_tokenizer() -> None:
    v = np.random.default_rng(1).standard_normal((600, 16)).astype(np.float32)
    r = audit(core.EmbeddingMatrix(v, [f"row{i}" for i in range(600)]))
    statuses = r.statuses
    assert statuses.pop("tokenizer") == "n/a" and statuses.pop("norm_frequency") == "n/a"
    assert statuses.pop("template_tokens") == "n/a"
    assert statuses.pop("unreachable") == "n/a" and statuses.pop("partial_utf8") == "n/a"
    assert set(statuses.values()) == {"pass"}


def test_too_small_matrix_is_not_applicable() -> None:
    v = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    r = audit(core.EmbeddingMatrix(v, list("abcde")))
    assert r.statuses["numerical"] == "pass" and r.statuses["duplicates"] == "pass"
    for cid in ("norm_outliers", "undertrained", "anisotropy", "rogue_dimensions", "norm_frequency", "tokenizer"):
        c = r.check(cid)
        assert c.status == "n/a" and c.value is None and c.reason
    assert "3 dimensions" in r.check("rogue_dimensions").reason


def test_normalised_rows_make_norm_checks_not_applicable() -> None:
    v = np.random.default_rng(2).standard_normal((500, 32))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = audit(core.EmbeddingMatrix(v.astype(np.float32), [f"w{i}" for i in range(500)]))
    assert r.statuses["norm_outliers"] == "n/a" and "same norm" in r.check("norm_outliers").reason
    assert r.statuses["undertrained"] == "n/a"


# -- the statistics against independent oracles ----------------------------------------------------------
def test_anisotropy_and_rogue_shares_against_all_pairs() -> None:
    from sklearn.metrics.pairwise import cosine_similarity

    rng = np.random.default_rng(4)
    v = rng.standard_normal((1200, 24))
    v[:, 5] += 2.0                           # a mean offset in one dimension (Timkey's rogue dimension)
    m = core.EmbeddingMatrix(v.astype(np.float32), [f"w{i}" for i in range(len(v))])
    r = audit(m, Policy.from_mapping({"anisotropy": {"sample": 1200}}))
    sim = cosine_similarity(v)
    n = len(v)
    mean_cos = (sim.sum() - n) / (n * (n - 1))
    assert r.check("anisotropy").value == pytest.approx(mean_cos, abs=1e-5)
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    cc = (np.einsum("ai,bi->i", u, u) - (u ** 2).sum(0)) / (n * (n - 1))
    dims = r.check("rogue_dimensions").data["dims"]
    np.testing.assert_allclose(dims["contribution"], cc, atol=1e-6)
    rogue = r.check("rogue_dimensions")
    assert rogue.status == "fail" and rogue.dims == (5,)


def test_norm_frequency_against_pandas_and_wordfreq(demo: core.EmbeddingMatrix, base: AuditReport,
                                                    demo_weights: np.ndarray) -> None:
    from wordfreq import zipf_frequency

    words = [i for i, k in enumerate(demo.kinds) if k == "word"]
    zipf = np.array([zipf_frequency(demo.index_to_key[i], "en") for i in words])
    norms = np.linalg.norm(demo_weights[words].astype(np.float64), axis=1)
    keep = zipf > 0
    rho = pd.Series(norms[keep]).corr(pd.Series(zipf[keep]), method="spearman")
    assert base.check("norm_frequency").value == pytest.approx(rho, abs=0.01)


def test_an_audit_lets_wordfreq_lists_go_and_labels_share_their_strings(demo: core.EmbeddingMatrix,
                                                                        categories: np.ndarray) -> None:
    """A server audits now and then: wordfreq's English list (~35 MiB) does not stay in memory after it, and
    the per-row labels are a few shared strings, not one string object per row."""
    import wordfreq

    audit(demo)
    assert wordfreq.get_frequency_dict.cache_info().currsize == 0
    assert wordfreq.get_frequency_list.cache_info().currsize == 0
    assert len({id(label) for label in categories}) == len(set(categories.tolist()))


def test_norm_frequency_uses_file_order_for_word2vec(tmp_path: Path, lee_model) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "lee.txt"
    lee_model.wv.save_word2vec_format(str(path))
    m = core.load(path)
    c = audit(m, Policy.from_mapping({"norm_frequency": {"source": "order"}})).check("norm_frequency")
    norms = np.linalg.norm(lee_model.wv.vectors.astype(np.float64), axis=1)
    rho = pd.Series(norms).corr(pd.Series(-np.arange(len(norms), dtype=float)), method="spearman")
    assert c.status == "pass" and c.value == pytest.approx(rho, abs=1e-6) and rho > 0.5
    assert "file's own order" in c.reason


def test_tokenizer_ids_past_the_rows_fail(demo: core.EmbeddingMatrix) -> None:
    cut = core.EmbeddingMatrix(np.asarray(demo.vectors[:30000]), demo.index_to_key[:30000],
                               tokenizer=demo.tokenizer, provenance=replace(demo.provenance, format="derived"))
    c = audit(cut, _NO_DUPES).check("tokenizer")
    assert c.status == "fail" and c.value == 522
    assert set(c.tokens) == set(demo.index_to_key[30000:])


# -- policy files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "named"), [
    ("[nonsense]\nz = 1\n", "'nonsense'"),
    ("[duplicates]\ncosin = 0.9\n", "duplicates.cosin"),
    ("[duplicates]\ncosine = 1.5\n", "duplicates.cosine"),
    ("[norm_outliers]\nz = \"high\"\n", "norm_outliers.z"),
    ("[numerical]\nfail_above = true\n", "numerical.fail_above"),
    ("[numerical]\nfail_above = 0.5\n", "numerical.fail_above"),
    ("[norm_frequency]\nlanguage = \"xx-nope\"\n", "norm_frequency.language"),
    ("duplicates = 3\n", "'duplicates'"),
    ("[duplicates\ncosine = 0.9\n", "not valid TOML"),
])
def test_policy_errors_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParameterError) as err:
        Policy.load(path)
    assert named in str(err.value) and str(path) in str(err.value)


def test_policy_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="cannot be read"):
        Policy.load(tmp_path / "nope.toml")


def test_policy_round_trips_and_changes_statuses(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    path = tmp_path / "strict.toml"
    path.write_text("[norm_outliers]\nfail_above = 0.01\n[undertrained]\nenabled = false\n", encoding="utf-8")
    policy = Policy.load(path)
    assert policy.get("norm_outliers", "fail_above") == 0.01 and policy.get("duplicates", "cosine") == 0.999
    assert Policy.from_toml(policy.to_toml()).section("norm_outliers") == policy.section("norm_outliers")
    r = audit(demo, Policy.from_mapping({**{c: dict(policy.section(c)) for c in CHECKS},
                                         "duplicates": {"enabled": False}}))
    assert r.statuses["norm_outliers"] == "fail" and r.statuses["undertrained"] == "n/a"
    assert "turned off" in r.check("undertrained").reason and len(r.undertrained) == 0


# -- CLI ---------------------------------------------------------------------------------------------------
def test_cli_minilm_exits_0_with_fail_on_fail(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "demo", "--json", "--fail-on", "fail"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"source", "checks", "undertrained", "summary"} <= set(out)
    assert out["source"] == "demo"
    for c in out["checks"]:
        assert {"id", "status", "value", "threshold", "tokens"} <= set(c)
    assert [c["id"] for c in out["checks"]] == list(CHECKS)
    assert {"pass", "warn", "fail"} <= set(out["summary"]) and out["summary"]["fail"] == 0
    assert all({"token", "id", "score"} <= set(u) for u in out["undertrained"]) and len(out["undertrained"]) == 611


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    v[5] = v[4]
    npy = tmp_path / "v.npy"
    np.save(npy, v)
    assert main(["audit", str(npy), "--json"]) == 1                      # a duplicated row fails
    out = json.loads(capsys.readouterr().out)
    assert next(c for c in out["checks"] if c["id"] == "duplicates")["tokens"] == ["4", "5"]
    policy = tmp_path / "p.toml"
    policy.write_text("[duplicates]\nmax_exact_groups = 1\n", encoding="utf-8")
    assert main(["audit", str(npy), "--policy", str(policy), "--fail-on", "warn"]) == 0
    policy.write_text("[duplicates]\nmax_exact_groups = 1\n[anisotropy]\nwarn_above = -1\n", encoding="utf-8")
    assert main(["audit", str(npy), "--policy", str(policy), "--fail-on", "fail"]) == 0
    assert main(["audit", str(npy), "--policy", str(policy), "--fail-on", "warn"]) == 1
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    assert main(["audit", str(bad), "--json"]) == 2
    policy.write_text("[duplicates]\ncosine = 2\n", encoding="utf-8")
    assert main(["audit", str(npy), "--policy", str(policy)]) == 2
    assert "duplicates.cosine" in capsys.readouterr().err


def test_cli_writes_the_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    npy = tmp_path / "v.npy"
    np.save(npy, v)
    out = tmp_path / "report.html"
    assert main(["audit", str(npy), "--html", str(out)]) == 0
    assert out.is_file() and "report written" in capsys.readouterr().out
    assert main(["audit", str(npy), "--html", str(out)]) == 2             # exists: needs --force
    assert main(["audit", str(npy), "--html", str(out), "--force"]) == 0


# -- the HTML report ---------------------------------------------------------------------------------------
def test_html_report_is_self_contained(tmp_path: Path, base: AuditReport) -> None:
    target = tmp_path / "health.html"
    write_html(base, target)
    text = target.read_text(encoding="utf-8")
    assert text.count("data:image/") == 5            # norms, scores, cosines, dimensions, frequency
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "[unused" in text and "Under-trained tokens" in text
    assert text.count("premise: ") == len(CHECKS) and "model family: encoder" in text
    with pytest.raises(OutputExistsError):
        write_html(base, target)
    assert not list(tmp_path.glob(".health.html.*"))  # no temp file left behind


# -- progress and cancel ---------------------------------------------------------------------------------
def test_progress_and_cancel() -> None:
    v = np.random.default_rng(0).standard_normal((2000, 32)).astype(np.float32)
    m = core.EmbeddingMatrix(v, [f"w{i}" for i in range(len(v))])
    seen: list[float] = []
    audit(m, progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        audit(m, cancel=lambda: next(calls) > 3)


# -- charts ------------------------------------------------------------------------------------------------
def _layers(check_id: str, report: AuditReport) -> list[tuple[str, list[dict]]]:
    """(mark, data rows) of every layer of a check's chart."""
    chart = charts.audit_chart(report.check(check_id))
    assert chart is not None, check_id
    spec = chart.to_dict()
    out = []
    for lay in spec.get("layer", [spec]):
        mark = lay["mark"]["type"] if isinstance(lay["mark"], dict) else lay["mark"]
        out.append((mark, spec["datasets"][lay.get("data", spec.get("data"))["name"]]))
    return out


def test_audit_charts(base: AuditReport, demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    drawn = {c.id for c in base.checks if charts.audit_chart(c) is not None}
    assert drawn == {"norm_outliers", "undertrained", "anisotropy", "rogue_dimensions", "norm_frequency"}
    norms = np.linalg.norm(demo_weights.astype(np.float64), axis=1)  # the oracle: numpy on safetensors' read
    # Norm histogram: every row in a bin, the bins span the norms, and each cut-off inside them is a rule.
    (bars, bins), (rule, cuts) = _layers("norm_outliers", base)
    assert (bars, rule) == ("bar", "rule")
    assert sum(b["rows"] for b in bins) == len(demo)
    assert bins[0]["start"] == pytest.approx(norms.min()) and bins[-1]["end"] == pytest.approx(norms.max())
    lo, hi = base.check("norm_outliers").data["cutoffs"]
    assert [c["norm"] for c in cuts] == [v for v in (lo, hi) if norms.min() <= v <= norms.max()]
    # Under-trained score (the L2 norm for MiniLM's input embeddings): every row, and the candidate cut-off.
    (bars, bins), (rule, cut) = _layers("undertrained", base)
    assert sum(b["rows"] for b in bins) == len(demo) and [c["score"] for c in cut] == [
        base.check("undertrained").data["cutoff"]]
    assert all(b["candidate"] for b in bins if b["end"] <= cut[0]["score"])
    # Pairwise cosines: the rule is the mean cosine over all pairs of distinct rows, in closed form.
    units = demo_weights.astype(np.float64) / norms[:, None]
    n = len(units)
    mean_cos = (np.sum(units.sum(axis=0) ** 2) - n) / (n * (n - 1))
    (bars, bins), (rule, mean) = _layers("anisotropy", base)
    assert (bars, rule) == ("bar", "rule") and mean[0]["cosine"] == pytest.approx(mean_cos, abs=1e-6)
    assert bins[0]["start"] == -1.0 and bins[-1]["end"] == 1.0
    # Rogue dimensions: one bar a dimension, red past the warn threshold, the two thresholds as rules.
    (bars, dims), (rule, lines) = _layers("rogue_dimensions", base)
    assert [d["dim"] for d in dims] == list(range(demo.dim))
    assert [(t["threshold"], t["share"]) for t in lines] == [("warn", 0.2), ("fail", 0.5)]
    assert all((d["where"] == "rogue") == (d["share"] > 0.2) for d in dims)
    rogue = charts.audit_chart(base.check("rogue_dimensions")).to_dict()  # type: ignore[union-attr]
    assert rogue["layer"][0]["encoding"]["y"]["field"] == "share"
    # Norm against frequency: each dot at its token's row norm.
    [(dots, points)] = _layers("norm_frequency", base)
    assert dots == "circle" and len(points) > 1000
    for pt in points[:200]:
        assert pt["norm"] == pytest.approx(norms[demo.get_index(pt["token"])], rel=1e-5)
    # The candidates: one dot each, coloured by what the tokenizer says.
    dots = charts.candidate_scores(base.undertrained).to_dict()
    rows = dots["datasets"][dots["data"]["name"]]
    assert dots["mark"]["type"] == "circle" and dots["encoding"]["color"]["field"] == "category"
    assert [r["id"] for r in rows] == base.undertrained["id"].head(60).tolist()
    assert all(r["score"] == pytest.approx(norms[r["id"]], rel=1e-5) for r in rows)


def test_padding_rows_past_the_tokenizer_are_noted_not_failed() -> None:
    v = np.random.default_rng(5).standard_normal((600, 16)).astype(np.float32)
    v[597] = 0.0                              # a zero padding row
    v[599] = v[598]                           # two equal padding rows
    m = core.EmbeddingMatrix(v, [f"w{i}" for i in range(590)] + [f"[row {i}]" for i in range(590, 600)],
                             unassigned_from=590)
    r = audit(m)
    assert r.statuses["numerical"] == "pass" and "zero padding rows" in r.check("numerical").reason
    dup = r.check("duplicates")
    assert dup.status == "warn" and set(dup.tokens) == {"[row 598]", "[row 599]"} and "padding" in dup.reason
    assert token_categories(m)[590:].tolist() == ["unassigned"] * 10


@pytest.mark.slow
def test_a_large_cluster_is_one_group_found_in_linear_time() -> None:
    """262,144 × 640 with 5,000 rows at one vector plus 1e-4 noise (the shape of Gemma 3's unused tokens)."""
    from sklearn.metrics.pairwise import cosine_similarity

    n, d, size = 262_144, 640, 5_000
    rng = np.random.default_rng(0)
    v = rng.standard_normal((n, d), dtype=np.float32)
    perm = rng.permutation(n)
    rows, low = np.sort(perm[:size]), perm[size:size + n // 50]
    v[rows] = rng.standard_normal(d, dtype=np.float32) + 1e-4 * rng.standard_normal((size, d), dtype=np.float32)
    v[low] *= 0.05
    m = core.EmbeddingMatrix(v, [f"t{i}" for i in range(n)])
    policy = Policy.from_mapping({c: {"enabled": False} for c in CHECKS if c != "duplicates"})
    dup = audit(m, policy).check("duplicates")
    # the oracle: every pair inside the cluster is above the threshold, no row outside comes near it
    inside = cosine_similarity(v[rows].astype(np.float64))
    outside = cosine_similarity(np.delete(v, rows, axis=0), v[rows[:1]])
    assert inside.min() > 0.999 and outside.max() < 0.5
    assert dup.data["near"] == [rows.tolist()] and dup.data["exact"] == []
    assert dup.status == "warn" and len(dup.tokens) == size
    table = dup.data["groups"]
    assert table["size"].tolist() == [size] and table["tokens"].iloc[0].endswith(f"({size - 50} more)")
