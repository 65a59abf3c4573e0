"""The audit on files people really ship: Gemma 3's released tokenizer over a 262,144-row table, a tokenizer
with a regular token past the rows, and the default policy on three healthy model families (MiniLM, an
encoder; SmolLM2, a decoder; gensim's word2vec test vectors, static word vectors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import core
from core.audit import CHECKS, Policy, audit
from tests._realfiles import npm_tokenizer

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


# -- the Health page ----------------------------------------------------------------------------------------
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _health_page(folder: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from streamlit.testing.v1 import AppTest

    from dashboard.state import DEMO, SourceSpec

    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(folder.parent))  # the server opens only folders it is told
    spec = SourceSpec("path", str(folder), label=folder.name)
    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["embedscope.opened"] = [DEMO, spec]
    at.session_state["embedscope.current"] = spec
    at.session_state["sidebar.matrix"] = spec
    at.run()
    at.switch_page("views/health.py").run()
    return at


def _tokenizer_table(at) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
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
