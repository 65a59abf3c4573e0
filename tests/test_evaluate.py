"""Benchmarks against gensim's own evaluate_word_analogies and evaluate_word_pairs, on the same vectors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import core
from core import evaluate
from core.cli import main
from core.errors import Cancelled, FormatError, ParameterError


@pytest.fixture(scope="module")
def kv_minilm(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(demo_weights.shape[1])
    kv.add_vectors(list(demo.index_to_key), demo_weights)
    return kv


@pytest.fixture(scope="module")
def lee(lee_model: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[core.EmbeddingMatrix, Any]:
    path = tmp_path_factory.mktemp("lee") / "lee.w2v.bin"
    lee_model.wv.save_word2vec_format(str(path), binary=True)
    return core.load(path), lee_model.wv


@pytest.fixture(scope="module")
def questions() -> Path:
    from gensim.test.utils import datapath

    return Path(datapath("questions-words.txt"))


@pytest.fixture(scope="module")
def small_questions(questions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every section of questions-words.txt, cut to its first 24 questions (fast enough for gensim)."""
    out, count = [], 0
    for line in questions.read_text(encoding="utf-8").splitlines():
        if line.startswith(": "):
            out.append(line)
            count = 0
        elif count < 24:
            out.append(line)
            count += 1
    path = tmp_path_factory.mktemp("qw") / "questions-small.txt"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _gensim_sections(kv: Any, path: Path, **kw: Any) -> tuple[float, list[tuple[str, int, int]]]:
    score, sections = kv.evaluate_word_analogies(str(path), **kw)
    return score, [(s["section"], len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections]


def _assert_same(ours: evaluate.AnalogyResult, gensim: tuple[float, list[tuple[str, int, int]]]) -> None:
    score, sections = gensim
    assert [(s.section, s.correct, s.total) for s in ours.sections] == sections[:-1]
    assert sections[-1][0] == "Total accuracy"
    assert (ours.correct, ours.total) == sections[-1][1:]
    assert ours.accuracy == score


# ------------------------------------------------------------------------------------------------
# analogies = evaluate_word_analogies
# ------------------------------------------------------------------------------------------------
def test_analogies_equal_gensim_on_minilm(demo: core.EmbeddingMatrix, kv_minilm: Any, small_questions: Path) -> None:
    ours = evaluate.evaluate_analogies(demo, small_questions)
    assert ours.total > 150 and 0.3 < ours.accuracy < 1.0
    _assert_same(ours, _gensim_sections(kv_minilm, small_questions))


@pytest.mark.parametrize("kw", [{"restrict_vocab": 6000}, {"case_insensitive": False},
                                {"dummy4unknown": True}])
def test_analogy_options_equal_gensim_on_minilm(demo: core.EmbeddingMatrix, kv_minilm: Any, small_questions: Path,
                                                kw: dict[str, Any]) -> None:
    _assert_same(evaluate.evaluate_analogies(demo, small_questions, **kw),
                 _gensim_sections(kv_minilm, small_questions, **kw))


def test_torch_backend_equals_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any, small_questions: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA code path (shared basis, gathers into buffers), run by torch on the CPU."""
    from core.search import _engine
    from core.search._backends import TorchOps

    monkeypatch.setattr(_engine, "_backend", lambda index, device: TorchOps(index, "cpu"))
    monkeypatch.setattr(_engine, "_BLOCK_ROWS", 64)
    _assert_same(evaluate.evaluate_analogies(demo, small_questions, restrict_vocab=20_000),
                 _gensim_sections(kv_minilm, small_questions, restrict_vocab=20_000))


@pytest.mark.parametrize("kw", [{}, {"restrict_vocab": 800}, {"case_insensitive": False}, {"dummy4unknown": True}])
def test_analogies_equal_gensim_on_lee(lee: tuple[core.EmbeddingMatrix, Any], questions: Path,
                                       kw: dict[str, Any]) -> None:
    m, kv = lee
    _assert_same(evaluate.evaluate_analogies(m, questions, **kw), _gensim_sections(kv, questions, **kw))


def test_case_variants_follow_gensim(tmp_path: Path) -> None:
    """Upper-cased keys: the first row wins, and a case variant of a question word is passed over."""
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(3)
    words = ["king", "King", "queen", "man", "woman", "Queen", "KING", "prince", "Man", "girl", "boy", "Woman"]
    vecs = rng.standard_normal((len(words), 16)).astype(np.float32)
    vecs[words.index("King")] = vecs[0] + 0.01  # a case variant right next to the question word
    kv = KeyedVectors(16)
    kv.add_vectors(words, vecs)
    m = core.EmbeddingMatrix(vecs, words)
    q = tmp_path / "q.txt"
    lines = [": s", *(f"{a} {b} {c} {d}" for a in words[:6] for b in words[3:9] for c in words[6:]
                      for d in words[:3])]
    q.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for kw in ({}, {"case_insensitive": False}, {"restrict_vocab": 7}):
        _assert_same(evaluate.evaluate_analogies(m, q, **kw), _gensim_sections(kv, q, **kw))


@pytest.mark.slow
def test_full_questions_words_equal_gensim_on_minilm(demo: core.EmbeddingMatrix, kv_minilm: Any,
                                                     questions: Path) -> None:
    ours = evaluate.evaluate_analogies(demo, "questions-words.txt")
    assert ours.questions == 19_544
    _assert_same(ours, _gensim_sections(kv_minilm, questions))


def test_3cosmul_answers_equal_most_similar_cosmul(demo: core.EmbeddingMatrix, kv_minilm: Any,
                                                  small_questions: Path) -> None:
    res = evaluate.evaluate_analogies(demo, small_questions, method="mul")
    rows = res.details[~res.details["oov"]].iloc[::16]
    assert len(rows) > 12
    for row in rows.itertuples():
        a, b, c = (str(w).lower() for w in (row.a, row.b, row.c))  # MiniLM's vocabulary is lower-case
        sims = kv_minilm.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
        guess = next((w.upper() for w, _ in sims if w.upper() not in {row.a, row.b, row.c}), sims[-1][0].upper())
        assert row.predicted == guess


def test_progress_and_cancel(demo: core.EmbeddingMatrix, small_questions: Path) -> None:
    seen: list[float] = []
    evaluate.evaluate_analogies(demo, small_questions, progress=lambda f, msg: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        evaluate.evaluate_analogies(demo, small_questions, cancel=lambda: True)


# ------------------------------------------------------------------------------------------------
# pairs = evaluate_word_pairs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("kw", [{}, {"restrict_vocab": 3000}, {"case_insensitive": False}, {"dummy4unknown": True}])
def test_pairs_equal_gensim(demo: core.EmbeddingMatrix, kv_minilm: Any, lee: tuple[core.EmbeddingMatrix, Any],
                            name: str, kw: dict[str, Any]) -> None:
    from gensim.test.utils import datapath

    for m, kv in ((demo, kv_minilm), lee):
        ours = evaluate.evaluate_pairs(m, name, **kw)
        pearson, spearman, oov = kv.evaluate_word_pairs(datapath(name), **kw)
        assert ours.pearson == pytest.approx(pearson[0], abs=1e-6)
        assert ours.spearman == pytest.approx(spearman[0], abs=1e-6)
        assert ours.oov_ratio == pytest.approx(oov, abs=1e-6)
        assert ours.file == name


def test_pairs_with_other_delimiter(lee: tuple[core.EmbeddingMatrix, Any], tmp_path: Path) -> None:
    from gensim.test.utils import datapath

    m, kv = lee
    csv = tmp_path / "ws.csv"
    csv.write_text(Path(datapath("wordsim353.tsv")).read_text(encoding="utf-8").replace("\t", ","), encoding="utf-8")
    ours = evaluate.evaluate_pairs(m, csv, delimiter=",")
    pearson, spearman, oov = kv.evaluate_word_pairs(str(csv), delimiter=",")
    assert (ours.pearson, ours.spearman, ours.oov_ratio) == pytest.approx((pearson[0], spearman[0], oov), abs=1e-6)


# ------------------------------------------------------------------------------------------------
# malformed files
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "message"), [
    ("athens greece paris france\n", "line 1: a question comes before the first section"),
    (": s\nathens greece paris\n", "line 2: expected 4 words"),
    (": s\n\nathens greece paris france\n:bad\n", "line 4: expected 4 words .*a section header is ': name'"),
    ("\n\n", "no section header"),
])
def test_bad_analogy_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "q.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError, match=message) as err:
        evaluate.read_analogies(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("text", "message"), [
    ("# c\ntiger\tcat\n", "line 2: expected 3 fields"),
    ("tiger\tcat\tseven\n", "line 1: the score 'seven' is not a number"),
    ("tiger\tcat\tnan\n", "not a finite number"),
    ("# only comments\n", "no word pairs"),
])
def test_bad_pair_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError, match=message):
        evaluate.read_pairs(path)


def test_undecodable_and_missing_files(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(": s\nking queen man woman\ncaf\xe9 a b c\n".encode("latin-1"))
    with pytest.raises(FormatError, match="line 3: not valid utf8"):
        evaluate.read_analogies(path)
    with pytest.raises(FormatError, match="line 3: not valid utf8"):
        evaluate.parse_analogies(path.read_bytes(), name="upload.txt")
    with pytest.raises(FormatError, match="no such benchmark file"):
        evaluate.evaluate_analogies(demo, tmp_path / "nope.txt")
    oov = tmp_path / "oov.tsv"
    oov.write_text("zzqx\tqqzx\t3\n", encoding="utf-8")
    with pytest.raises(FormatError, match="none of the 1 pairs"):
        evaluate.evaluate_pairs(demo, oov)
    with pytest.raises(ParameterError, match="restrict_vocab"):
        evaluate.evaluate_pairs(demo, "wordsim353.tsv", restrict_vocab=0)
    with pytest.raises(ParameterError, match="method"):
        evaluate.evaluate_analogies(demo, "questions-words.txt", method="sub")


def test_standard_sets_degrade_without_gensim(monkeypatch: pytest.MonkeyPatch) -> None:
    from gensim.test.utils import datapath

    assert evaluate.standard_sets() == {n: Path(datapath(n)) for n in evaluate.STANDARD_SETS}
    monkeypatch.setitem(sys.modules, "gensim", None)
    assert evaluate.standard_sets() == {}
    with pytest.raises(FormatError, match="gensim, which is not installed"):
        evaluate.resolve_benchmark("wordsim353.tsv")


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_evaluate_json(capsys: pytest.CaptureFixture[str], lee: tuple[core.EmbeddingMatrix, Any],
                           small_questions: Path, tmp_path: Path, lee_model: Any) -> None:
    from gensim.test.utils import datapath

    path = tmp_path / "lee.txt"
    lee_model.wv.save_word2vec_format(str(path))
    code = main(["evaluate", str(path), "--analogies", "questions-words.txt", "--pairs", "wordsim353.tsv",
                 "simlex999.txt", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    payload = json.loads(out)
    a = payload["analogies"]
    assert {"accuracy", "correct", "total", "sections"} <= set(a)
    assert all(set(s) >= {"section", "correct", "total"} for s in a["sections"])
    _, sections = _gensim_sections(lee[1], Path(datapath("questions-words.txt")))
    assert (a["correct"], a["total"]) == sections[-1][1:]
    assert [p["file"] for p in payload["pairs"]] == ["wordsim353.tsv", "simlex999.txt"]
    for p in payload["pairs"]:
        assert {"file", "pearson", "spearman", "oov_ratio"} <= set(p)
        pearson, spearman, oov = lee[1].evaluate_word_pairs(datapath(p["file"]))
        assert (p["pearson"], p["spearman"], p["oov_ratio"]) == pytest.approx((pearson[0], spearman[0], oov),
                                                                             abs=1e-6)

    bad = tmp_path / "bad.txt"
    bad.write_text(": s\nking queen\n", encoding="utf-8")
    assert main(["evaluate", str(path), "--analogies", str(bad), "--json"]) == 2
    assert "line 2" in capsys.readouterr().err
