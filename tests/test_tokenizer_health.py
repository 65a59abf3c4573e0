"""The tokenizer checks of the audit (Land & Bartolo 2024): unreachable and partial-UTF-8 tokens, and health by
script, on MiniLM's WordPiece and SmolLM2's byte-level BPE, checked against a brute-force pass of the
``tokenizers`` library itself over every token."""

from __future__ import annotations

import _realfiles
import pytest
from tokenizers import Tokenizer

import core
from core.audit import audit
from core.audit.checks.scripts import script_of

PREFIXES = ("the", "z", "un", "x", "a", "q", "1", "«", "中")


def _brute_force(tj: Tokenizer, continuation: str) -> tuple[set[int], set[int]]:
    """(unreachable ids, partial UTF-8 ids) by encoding every token's decoded text with the library directly."""
    special = {t.content for t in tj.get_added_tokens_decoder().values() if t.special}
    unreachable, partial = set(), set()
    for tok, i in tj.get_vocab(with_added_tokens=True).items():
        if tok in special:
            continue
        text = tj.decode([i], skip_special_tokens=False)
        if "\ufffd" in text:
            if i not in tj.encode(text, add_special_tokens=False).ids:  # not the character U+FFFD itself
                partial.add(i)
            continue
        if i in tj.encode(text, add_special_tokens=False).ids:
            continue
        if continuation == "##" and tok.startswith("##") and len(tok) > 2:
            piece, cont = tok[2:], True
        elif continuation == "Ġ":
            piece, cont = text, not tok.startswith("Ġ")
        else:
            piece, cont = text, False
        if cont and any(i in tj.encode(p + piece, add_special_tokens=False).ids for p in PREFIXES):
            continue
        unreachable.add(i)
    return unreachable, partial


@pytest.mark.parametrize("which", ["minilm", "smollm2"])
def test_unreachable_and_partial_match_brute_force(which: str) -> None:
    folder = core.demo_path() if which == "minilm" else _realfiles.smollm2_hf_folder()
    m = core.load(folder)
    tj = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tj.no_padding()  # MiniLM's file pads every encoding to 128
    tj.no_truncation()
    unreachable, partial = _brute_force(tj, "##" if which == "minilm" else "Ġ")
    rep = audit(m)
    got = rep.check("unreachable")
    assert set(got.ids) == unreachable
    table = got.data["rows"]
    assert all(enc == " ".join(tj.encode(text, add_special_tokens=False).tokens)
               for text, enc in zip(table["decoded"][:200], table["encodes as"][:200], strict=True))
    assert set(rep.check("partial_utf8").ids) == partial
    assert not set(rep.undertrained["id"]) & partial  # kept apart from the under-trained candidates
    if which == "smollm2":
        assert len(partial) > 100 and not unreachable
    else:
        assert not partial and len(unreachable) > 1000  # [unusedN]


@pytest.mark.parametrize("text,script", [("hello", "Latin"), ("привет", "Cyrillic"), ("東京", "CJK"),
                                         ("مرحبا", "Arabic"), ("とうきょう", "Japanese kana"), ("123", "Digits"),
                                         ("!?", "Symbols"), ("한국", "Hangul")])
def test_script_of(text: str, script: str) -> None:
    assert script_of(text) == script


def test_health_by_script_counts() -> None:
    m = core.load("demo")
    rep = audit(m)
    table = rep.check("scripts").data["rows"].set_index("script")
    special = m.tokenizer.special_tokens
    from core.tokens import strip_marker

    scripts = ["Special" if t in special else script_of(strip_marker(t, "wordpiece")[0]) for t in m.index_to_key]
    cand = set(rep.undertrained["id"].tolist())
    for name in ("Latin", "CJK", "Bengali"):
        rows = [i for i, s in enumerate(scripts) if s == name]
        assert table.loc[name, "tokens"] == len(rows)
        assert table.loc[name, "under-trained"] == len(cand.intersection(rows))
