"""The audit on files people really ship: Gemma 3's released tokenizer over a 262,144-row table, a tokenizer
with a regular token past the rows, and the default policy on three healthy model families (MiniLM, an
encoder; SmolLM2, a decoder; gensim's word2vec test vectors, static word vectors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from _realfiles import npm_tokenizer, smollm2_hf_folder
from safetensors.numpy import save_file

import core
from core.audit import CHECKS, Policy, audit

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

GEMMA_ROWS = 262_144  # Gemma 3's embedding table; its tokenizer.json has one entry more


def _hf_folder(folder: Path, rows: int, dim: int, architecture: str, model_type: str) -> Path:
    v = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    save_file({"model.embed_tokens.weight": v}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": [architecture], "model_type": model_type,
                                                    "vocab_size": rows, "hidden_size": dim}))
    return folder


@pytest.fixture(scope="module")
def gemma3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The released Gemma 3 tokenizer files beside a seeded 262,144 × 8 matrix (the real table's row count)."""
    src = npm_tokenizer("gemma3")
    folder = tmp_path_factory.mktemp("gemma3")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, folder / name)
    return _hf_folder(folder, GEMMA_ROWS, 8, "Gemma3ForCausalLM", "gemma3_text")


#: Only the tokenizer check: the full audit of 262,144 rows encodes every token (the slow tests run it).
_TOKENIZER_ONLY = Policy.from_mapping({c: {"enabled": False} for c in CHECKS if c != "tokenizer"})


def test_gemma3_placeholder_past_the_table_is_a_warning_naming_it(gemma3_folder: Path) -> None:
    from tokenizers import Tokenizer

    oracle = Tokenizer.from_file(str(gemma3_folder / "tokenizer.json"))  # the tokenizers library itself
    past = {t: i for t, i in oracle.get_vocab(with_added_tokens=True).items() if i >= GEMMA_ROWS}
    assert past == {"<image_soft_token>": GEMMA_ROWS}
    added = {t.content for t in oracle.get_added_tokens_decoder().values()}
    assert set(past) <= added
    c = audit(core.load(gemma3_folder), _TOKENIZER_ONLY).check("tokenizer")
    assert c.status == "warn", c.reason
    assert "'<image_soft_token>' (id 262144)" in c.reason
    # Each token once, side by side with its id (the page tabulates them together).
    assert c.tokens == ("<image_soft_token>",) and c.ids == (GEMMA_ROWS,)
    out = c.to_json()
    assert out["count"] == 1 and out["tokens"] == ["<image_soft_token>"] and out["ids"] == [GEMMA_ROWS]
    assert out["value"] == 0.0  # no vocabulary token is without a row


@pytest.mark.slow
def test_gemma3_as_published_passes_the_gate(gemma3_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    assert main(["audit", str(gemma3_folder), "--fail-on", "fail", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    tok = next(c for c in out["checks"] if c["id"] == "tokenizer")
    assert tok["status"] == "warn" and tok["tokens"] == ["<image_soft_token>"]


def _word_level(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(299)}}   # ids 0..299
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.add_special_tokens(["<image_soft_token>"])                       # id 300
    tk.save(str(folder / "tokenizer.json"))
    return folder


def test_a_regular_token_past_the_rows_still_fails(tmp_path: Path) -> None:
    folder = _hf_folder(_word_level(tmp_path), 299, 16, "Gemma3ForCausalLM", "gemma3_text")
    c = audit(core.load(folder)).check("tokenizer")
    assert c.status == "fail" and c.value == 1.0
    assert "1 vocabulary token ids reach past" in c.reason and "'w298'" in c.reason
    assert "'<image_soft_token>' (id 300)" in c.reason          # the placeholder is named too
    assert c.tokens == ("w298", "<image_soft_token>") and c.ids == (299, 300)


def test_only_the_placeholder_past_the_rows_is_a_warning(tmp_path: Path) -> None:
    folder = _hf_folder(_word_level(tmp_path), 300, 16, "Gemma3ForCausalLM", "gemma3_text")
    r = audit(core.load(folder))
    c = r.check("tokenizer")
    assert c.status == "warn" and c.tokens == ("<image_soft_token>",) and c.ids == (300,)
    assert not r.reaches("fail")


# -- the default policy on three healthy families -----------------------------------------------------------
def _word2vec_test_vectors() -> Path:
    from gensim.test.utils import datapath

    return Path(datapath("word2vec_pre_kv_c"))  # gensim's own word2vec C text vectors, 1,750 × 10


#: What each check says on each healthy model under the default policy (the report lists these).
EXPECTED = {
    "minilm": {"numerical": "pass", "duplicates": "pass", "norm_outliers": "warn", "undertrained": "warn",
               "anisotropy": "pass", "rogue_dimensions": "pass", "norm_frequency": "pass", "tokenizer": "pass",
               "template_tokens": "n/a", "unreachable": "pass", "partial_utf8": "pass",
               # MiniLM's Bengali, Tibetan and Sinhala tokens are 10-15 times as often under-trained as the rest
               "scripts": "warn"},
    "smollm2": {"numerical": "pass", "duplicates": "warn", "norm_outliers": "pass", "undertrained": "warn",
                "anisotropy": "pass", "rogue_dimensions": "pass", "norm_frequency": "n/a", "tokenizer": "pass",
                # SmolLM2-135M-Instruct's <|im_start|> and <|im_end|> rows sit with the never-used tokens' rows
                # (the indicator flags them) but have ordinary lengths: a warning, not a failed release
                "template_tokens": "warn", "unreachable": "pass", "partial_utf8": "pass", "scripts": "pass"},
    "word2vec": {"numerical": "pass", "duplicates": "warn", "norm_outliers": "pass", "undertrained": "pass",
                 "anisotropy": "n/a", "rogue_dimensions": "n/a", "norm_frequency": "pass", "tokenizer": "n/a",
                 "template_tokens": "n/a", "unreachable": "n/a", "partial_utf8": "n/a", "scripts": "pass"},
}


def _cli_audit(source: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:  # type: ignore[type-arg]
    from core.cli import main

    code = main(["audit", source, "--fail-on", "fail", "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_three_model_families_at_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    sources = {"minilm": "demo", "smollm2": str(smollm2_hf_folder()), "word2vec": str(_word2vec_test_vectors())}
    families = {"minilm": "encoder", "smollm2": "decoder", "word2vec": "static"}
    for name, source in sources.items():
        code, out = _cli_audit(source, capsys)
        statuses = {c["id"]: c["status"] for c in out["checks"]}
        gate = 1 if "fail" in EXPECTED[name].values() else 0
        assert (code, out["family"], statuses) == (gate, families[name], EXPECTED[name]), (
            name, {c["id"]: c["reason"] for c in out["checks"]})
        for c in out["checks"]:
            assert c["premise"] and (c["status"] != "n/a" or c["value"] is None)


def test_norm_frequency_premise_fails_on_the_decoder_and_the_check_says_so() -> None:
    from wordfreq import zipf_frequency

    m = core.load(smollm2_hf_folder())
    only = Policy.from_mapping({c: {"enabled": False} for c in CHECKS if c != "norm_frequency"})
    c = audit(m, only).check("norm_frequency")
    assert c.status == "n/a" and c.value is None and "decoder" in c.reason and "LlamaForCausalLM" in c.reason
    # The premise measured independently: pandas' Spearman of the released rows' norms against wordfreq.
    words = [i for i, k in enumerate(m.kinds) if k == "word"]
    zipf = np.array([zipf_frequency(m.index_to_key[i].lstrip("Ġ"), "en") for i in words])
    norms = np.linalg.norm(np.asarray(m.vectors[words], np.float64), axis=1)
    keep = zipf > 0
    rho = pd.Series(norms[keep]).corr(pd.Series(zipf[keep]), method="spearman")
    assert rho < -0.5 and f"Spearman rho {rho:+.2f}" in c.reason
    # A policy that says the model is an encoder applies the check, and the reversal warns as before.
    forced = Policy.from_mapping({**{c: {"enabled": False} for c in CHECKS if c != "norm_frequency"},
                                  "model": {"family": "encoder"}})
    r = audit(m, forced)
    assert r.family == "encoder" and r.check("norm_frequency").status == "warn"


def test_smollm2_equal_rows_are_under_trained_tokens() -> None:
    m = core.load(smollm2_hf_folder())
    r = audit(m)
    dup, under = r.check("duplicates"), r.check("undertrained")
    # numpy's own grouping of equal rows is the oracle
    v = np.asarray(m.vectors)
    _, inverse, counts = np.unique(v, axis=0, return_inverse=True, return_counts=True)
    equal = [sorted(np.flatnonzero(inverse.ravel() == g).tolist()) for g in np.flatnonzero(counts > 1)]
    assert sorted(equal) == dup.data["exact"] and len(equal) == 4
    assert {i for g in equal for i in g} <= set(under.ids)
    assert dup.status == "warn" and "under-trained tokens" in dup.reason


@pytest.mark.parametrize(("config", "family"), [
    ({"architectures": ["BertForMaskedLM"], "model_type": "bert"}, "encoder"),
    ({"architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta"}, "encoder"),
    ({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}, "decoder"),
    ({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
      "text_config": {"model_type": "gemma3_text"}}, "decoder"),
    ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, "decoder"),
    ({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"}, "unknown"),
    ({}, "unknown"),
])
def test_family_from_config(config: dict, family: str) -> None:  # type: ignore[type-arg]
    from core._family import family_of_config

    assert family_of_config(config)[0] == family


def test_unknown_family_makes_norm_frequency_not_applicable(tmp_path: Path) -> None:
    words = core.load(_word2vec_test_vectors())
    np.save(tmp_path / "vectors.npy", np.asarray(words.vectors))
    (tmp_path / "vocab.txt").write_text("\n".join(words.index_to_key) + "\n", encoding="utf-8")
    m = core.load(tmp_path / "vectors.npy", vocab=tmp_path / "vocab.txt")
    c = audit(m, Policy.from_mapping({c: {"enabled": False} for c in CHECKS if c != "norm_frequency"}))
    r = c.check("norm_frequency")
    assert r.status == "n/a" and "unknown family" in r.reason and "[model] family" in r.reason


# -- the Health page ----------------------------------------------------------------------------------------
def _health_page(folder: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    from _apptest import page_on

    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(folder.parent))  # the server opens only folders it is told
    return page_on(folder, "health", timeout=600)


def _tokenizer_table(at: AppTest) -> list[tuple[str, int]]:
    (table,) = [d.value for d in at.dataframe if list(d.value.columns) == ["token", "id"]]
    return list(zip(table["token"], table["id"], strict=True))


def test_health_page_lists_a_placeholder_past_the_rows_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    _hf_folder(_word_level(folder), 300, 16, "Gemma3ForCausalLM", "gemma3_text")
    at = _health_page(folder, monkeypatch)
    assert not at.exception, at.exception
    assert "Tokenizer consistency — warn (1 tokens)" in [e.label for e in at.expander]
    assert _tokenizer_table(at) == [("<image_soft_token>", 300)]


@pytest.mark.slow
def test_health_page_on_gemma3(gemma3_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _health_page(gemma3_folder, monkeypatch)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Tokenizer consistency — warn (1 tokens)" in [e.label for e in at.expander]
    assert _tokenizer_table(at) == [("<image_soft_token>", GEMMA_ROWS)]
