"""The release gate (issue 16): constructed pairs with known answers, real MiniLM pairs, the outputs parsed back.

Oracles: compare()'s own drift and Jaccard for the same tokens; numpy for which rows changed; the constructed
differences themselves; Python's HTML parser and junitparser for the outputs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import core
from core import finetune as ft
from core.compare import compare, quantize
from core.errors import ParameterError
from core.gate import GateSettings, frequent_tokens, gate, load_policy
from core.matrix import EmbeddingMatrix
from core.report import gate as out


def _words(n: int, dim: int = 24, seed: int = 0) -> EmbeddingMatrix:
    rng = np.random.default_rng(seed)
    return EmbeddingMatrix(rng.standard_normal((n, dim)).astype(np.float32), [f"w{i}" for i in range(n)])


# -- constructed pairs -------------------------------------------------------------------------------------
def test_identical_matrices_pass_with_zero_drift() -> None:
    m = _words(400)
    rep = gate(m, m)
    assert rep.verdict in ("pass", "warn") and rep.ships
    assert rep.check("drift").value == 0.0 and rep.check("jaccard_frequent").value == 1.0
    assert rep.check("changed_rows").value == 0 and rep.check("vocabulary").status == "pass"
    assert all(c.status != "fail" for c in rep.checks)


def test_vocabulary_diff_on_constructed_pairs() -> None:
    base = _words(300)
    v = np.asarray(base.vectors)
    toks = list(base.index_to_key)
    removed = EmbeddingMatrix(v[1:], toks[1:])                            # w0 removed (every id shifts)
    added = EmbeddingMatrix(np.vstack([v, v[:1] * 0.5]), [*toks, "new"])  # a token added at the end
    swapped_t = toks.copy()
    swapped_t[5], swapped_t[6] = swapped_t[6], swapped_t[5]
    swapped = EmbeddingMatrix(v[[*range(5), 6, 5, *range(7, 300)]], swapped_t)  # two tokens swap ids
    r = gate(added, base).check("vocabulary")
    assert r.status == "pass" and r.data["added"] == ["new"] and not r.data["removed"] and not r.data["renumbered"]
    r = gate(removed, base).check("vocabulary")
    assert r.status == "fail" and r.data["removed"] == ["w0"] and len(r.data["renumbered"]) == 299
    r = gate(swapped, base).check("vocabulary")
    assert r.status == "fail" and sorted(r.data["renumbered"]) == ["w5", "w6"]
    # the rows moved with their tokens: nothing else changed
    assert gate(swapped, base).check("changed_rows").value == 0
    allowed = GateSettings.from_mapping({"allow_renumbered": True})
    assert gate(swapped, base, settings=allowed).check("vocabulary").status == "warn"


def test_drift_and_jaccard_equal_compare() -> None:
    base = _words(500, seed=1)
    rng = np.random.default_rng(2)
    v = np.asarray(base.vectors).copy()
    v[:50] += rng.standard_normal((50, v.shape[1])).astype(np.float32)
    new = base.with_vectors(v)
    rep = gate(new, base)
    c = compare(base, new, k=10)
    assert rep.check("drift").value == pytest.approx(float(np.mean(c.drift)))
    assert rep.check("drift").data["p99"] == pytest.approx(float(np.percentile(c.drift, 99)))
    assert rep.check("jaccard_frequent").value == pytest.approx(float(c.jaccard.mean()))
    changed = set(rep.check("changed_rows").data["changed"])
    assert changed == {f"w{i}" for i in range(50)}


def test_different_dimensions_compare_neighborhoods_only() -> None:
    a, b = _words(300, dim=16), _words(300, dim=24)
    rep = gate(b, a)
    assert rep.check("drift").status == "n/a" and rep.check("changed_rows").status == "n/a"
    assert rep.check("jaccard_frequent").value is not None
    assert any("dimensions" in n for n in rep.notes)


def test_only_shared_tokens_are_compared() -> None:
    a = _words(300)
    b = EmbeddingMatrix(np.asarray(a.vectors)[:200], list(a.index_to_key)[:200])
    rep = gate(b, a)
    assert rep.comparison.compared == 200
    assert len(rep.check("vocabulary").data["removed"]) == 100


def test_policy_unknown_key_names_itself(tmp_path: Path) -> None:
    p = tmp_path / "gate.toml"
    p.write_text("[gate]\ndrift_p99_fial = 0.3\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="gate.drift_p99_fial"):
        load_policy(p)
    p.write_text("[gate]\njaccard_warn = 0.9\n[duplicates]\ncosine = 0.99\n", encoding="utf-8")
    policy, settings = load_policy(p)
    assert settings.get("jaccard_warn") == 0.9 and policy.get("duplicates", "cosine") == 0.99


def test_frequent_tokens_follow_wordfreq() -> None:
    m = EmbeddingMatrix(np.eye(4, dtype=np.float32), ["zyzzyva", "the", "cat", "of"])
    assert frequent_tokens(m, list(m.index_to_key), 2) == ["the", "of"]


# -- real pairs on MiniLM ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> EmbeddingMatrix:
    return core.load("demo")


def test_ten_zeroed_rows_fail_on_exactly_those(demo: EmbeddingMatrix) -> None:
    v = np.array(demo.vectors, dtype=np.float32)
    rows = list(range(2000, 2010))
    v[rows] = 0
    rep = gate(demo.with_vectors(v), demo)
    zeroed = {demo.index_to_key[i] for i in rows}
    assert rep.verdict == "fail"
    fails = [c for c in rep.checks if c.status == "fail"]
    assert {c.id for c in fails} == {"numerical", "new_bad_rows"}
    assert all(set(c.tokens) == zeroed for c in fails)
    assert set(rep.check("changed_rows").data["changed"]) == zeroed


def test_sgns_finetune_passes_and_drifts_only_on_corpus_tokens(demo: EmbeddingMatrix) -> None:
    texts, _ = ft.read_texts(ft.demo_corpus())
    corpus = ft.tokenize(demo, texts)
    res = ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, seed=0, watch_size=0))
    tuned = demo.with_vectors(res.apply(demo))
    rep = gate(tuned, demo)
    assert rep.ships, [(c.id, c.reason) for c in rep.checks if c.status == "fail"]
    changed = set(rep.check("changed_rows").data["changed"])
    corpus_tokens = {demo.index_to_key[i] for i in np.unique(corpus.ids).tolist()}
    assert changed and changed <= corpus_tokens
    assert {m["token"] for m in rep.to_json()["moved"][:10]} <= corpus_tokens


def test_int8_copy_as_the_quantised_release(demo: EmbeddingMatrix) -> None:
    q = quantize(demo, "int8")
    rep = gate(demo, quantized=q)
    ids = {c.id for c in rep.checks}
    assert {"quantized_drift", "quantized_jaccard", "quantized_error"} <= ids
    assert rep.check("quantized_jaccard").value > 0.9
    assert rep.check("quantized_error").status == "pass"


# -- outputs -------------------------------------------------------------------------------------------------
class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.codes: list[str] = []
        self._in_code = False
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_code = tag == "code"
        for k, v in attrs:
            if k in ("src", "href") and v and not v.startswith(("data:", "#")):
                self.external.append(v)

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.codes.append(data)
            self._in_code = False


def test_outputs_parse_back() -> None:
    junitparser = pytest.importorskip("junitparser")
    base = _words(300)
    v = np.asarray(base.vectors).copy()
    v[3] = np.nan
    rep = gate(base.with_vectors(v), base)
    page = out.render_html(rep, base.with_vectors(v), base)
    parser = _Ids()
    parser.feed(page)
    assert {c.id for c in rep.checks} <= set(parser.codes)
    assert parser.external == []  # self-contained
    assert "size: A4" in page and 'id="verdict"' in page
    xml = junitparser.JUnitXml.fromstring(out.junit_xml(rep))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == len(rep.checks)
    failed = {case.name for case in cases if any(isinstance(r, junitparser.Failure) for r in case.result)}
    assert failed == {c.id for c in rep.checks if c.status == "fail"} and "new_bad_rows" in failed
    md = out.markdown(rep)
    assert md.startswith("### ❌") and "New NaN, zero or duplicate rows" in md


# -- the command line ----------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core.cli", "gate", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_cli_exit_codes_and_outputs(tmp_path: Path) -> None:
    base = _words(300)
    np.save(tmp_path / "old.npy", np.asarray(base.vectors))
    v = np.asarray(base.vectors).copy()
    v[7] = 0
    np.save(tmp_path / "bad.npy", v)
    ok = _cli("old.npy", "--baseline", "old.npy", "--json", "--report", "r.html", "--junit", "j.xml",
              "--markdown", "s.md", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    payload = json.loads(ok.stdout)
    assert {"verdict", "new", "baseline", "checks", "summary"} <= set(payload)
    assert all({"id", "status", "value", "threshold", "tokens"} <= set(c) for c in payload["checks"])
    assert set(payload["summary"]) >= {"pass", "warn", "fail"}
    assert (tmp_path / "r.html").stat().st_size > 1000 and (tmp_path / "j.xml").is_file()
    again = _cli("old.npy", "--baseline", "old.npy", "--report", "r.html", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    bad = _cli("bad.npy", "--baseline", "old.npy", "--json", cwd=tmp_path)
    assert bad.returncode == 1 and json.loads(bad.stdout)["verdict"] == "fail"
    (tmp_path / "p.toml").write_text("[nosuchcheck]\nx = 1\n", encoding="utf-8")
    pol = _cli("old.npy", "--policy", "p.toml", cwd=tmp_path)
    assert pol.returncode == 2 and "nosuchcheck" in pol.stderr
    missing = _cli("old.npy", "--baseline", "nothere.npy", cwd=tmp_path)
    assert missing.returncode == 2
    nodir = _cli("old.npy", "--report", "no/such/dir/r.html", cwd=tmp_path)
    assert nodir.returncode == 2 and "does not exist" in nodir.stderr
