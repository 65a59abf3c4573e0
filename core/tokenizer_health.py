"""Tokenizer analysis after Land & Bartolo (2024), "Fishing for Magikarp": what the tokenizer can never produce,
which byte-level tokens are not whole characters, and which writing systems a release short-changes.

- :func:`unreachable_tokens`: tokens (not special) that the tokenizer never produces when it encodes their own
  decoded text, each with what the encoding gives instead.
- :func:`partial_utf8_tokens`: byte-level tokens whose bytes are an incomplete UTF-8 sequence (they decode to
  U+FFFD alone); they are kept apart from the under-trained candidates, since a model meets them only inside a
  longer character.
- :func:`script_of` and :func:`health_by_script`: the share of under-trained candidates per Unicode script.

All three look at the tokenizer alone, never at the vectors or at token names.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.matrix import EmbeddingMatrix
from core.tokens import strip_marker

#: Script names as the report shows them, from the first word of a character's Unicode name.
_SCRIPT_WORDS = {
    "LATIN": "Latin", "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARABIC": "Arabic", "HEBREW": "Hebrew",
    "CJK": "CJK", "HIRAGANA": "Japanese kana", "KATAKANA": "Japanese kana", "HANGUL": "Hangul",
    "DEVANAGARI": "Devanagari", "BENGALI": "Bengali", "TAMIL": "Tamil", "TELUGU": "Telugu", "THAI": "Thai",
    "ARMENIAN": "Armenian", "GEORGIAN": "Georgian", "ETHIOPIC": "Ethiopic", "GUJARATI": "Gujarati",
    "GURMUKHI": "Gurmukhi", "KANNADA": "Kannada", "MALAYALAM": "Malayalam", "SINHALA": "Sinhala",
    "KHMER": "Khmer", "LAO": "Lao", "MYANMAR": "Myanmar", "TIBETAN": "Tibetan", "MONGOLIAN": "Mongolian",
}


def script_of(text: str) -> str:
    """The main script of ``text``: the most common script among its letters; "Digits", "Symbols" or
    "Other" when it has no letter."""
    counts: Counter[str] = Counter()
    digits = symbols = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("L"):
            word = unicodedata.name(ch, "").split(" ", 1)[0]
            counts[_SCRIPT_WORDS.get(word, "Other letters")] += 1
        elif cat == "Nd":
            digits += 1
        elif cat[0] in "PSZ" or ch == "\ufffd":
            symbols += 1
    if counts:
        return counts.most_common(1)[0][0]
    return "Digits" if digits else ("Symbols" if symbols else "Other")


@dataclass(frozen=True)
class Unreachable:
    """A token the tokenizer never produces from its own text, and what the encoding gives instead."""

    token: str
    id: int
    text: str
    instead: tuple[str, ...]


def _candidates(m: EmbeddingMatrix) -> list[tuple[int, str]]:
    special = m.tokenizer.special_tokens
    n = len(m)
    return sorted((i, t) for t, i in m.tokenizer.vocab().items() if 0 <= i < n and t not in special)


_PREFIXES = ("the", "z", "un", "x", "a", "q", "1", "«", "中")


def unreachable_tokens(m: EmbeddingMatrix, progress: Callable[[float], None] | None = None) -> list[Unreachable]:
    """Tokens (not special) that no encoding of their own decoded text reproduces.

    A continuation piece (``##ing``, a BPE piece without a word-start marker) counts as reachable when some
    common prefix glued to it gives it back. Partial UTF-8 tokens are left to :func:`partial_utf8_tokens`.
    """
    if not m.has_tokenizer:
        return []
    tok = m.tokenizer
    scheme = tok.scheme
    out: list[Unreachable] = []
    items = _candidates(m)
    for k, (i, t) in enumerate(items):
        if progress is not None and k % 4096 == 0:
            progress(k / max(1, len(items)))
        text = tok.decode([i])
        if "\ufffd" in text:
            continue
        pieces = tok.encode(text)
        if any(p.id == i for p in pieces):
            continue
        core_text, continues = strip_marker(t, scheme)
        if continues:
            piece = core_text if scheme == "wordpiece" else text
            if any(any(p.id == i for p in tok.encode(pre + piece)) for pre in _PREFIXES):
                continue
        out.append(Unreachable(t, i, text, tuple(p.token for p in pieces)))
    return out


def _utf8_bytes(token: str, scheme: str) -> bytes | None:
    """The bytes of a byte-level BPE token (GPT-2's byte-to-unicode map), or of a SentencePiece ``<0xNN>``."""
    if scheme == "bytelevel-bpe":
        table = _byte_decoder()
        try:
            return bytes(table[c] for c in token)
        except KeyError:
            return None
    if scheme == "sentencepiece" and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return bytes([int(token[3:5], 16)])
        except ValueError:
            return None
    return None


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-in for each byte, reversed (the map every byte-level BPE shares)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


def partial_utf8_tokens(m: EmbeddingMatrix) -> list[tuple[str, int]]:
    """(token, id) of every token whose bytes are not a whole UTF-8 sequence (byte-level and byte-fallback
    tokenizers only)."""
    if not m.has_tokenizer:
        return []
    scheme = m.tokenizer.scheme
    out = []
    for i, t in _candidates(m):
        raw = _utf8_bytes(t, scheme)
        if raw is None:
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            out.append((t, i))
    return out


@dataclass(frozen=True)
class ScriptShare:
    """Under-trained candidates among one script's tokens."""

    script: str
    tokens: int
    undertrained: int

    @property
    def share(self) -> float:
        return self.undertrained / self.tokens if self.tokens else 0.0


def health_by_script(m: EmbeddingMatrix, undertrained_ids: Sequence[int]) -> list[ScriptShare]:
    """Per script: how many tokens it has and how many of them are under-trained candidates, largest share first."""
    scheme = m.tokenizer.scheme
    special = m.tokenizer.special_tokens
    bad = set(int(i) for i in undertrained_ids)
    totals: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for i, t in enumerate(m.index_to_key):
        if t in special or (m.unassigned_from is not None and i >= m.unassigned_from):
            continue
        text = m.tokenizer.decode([i]) if scheme == "bytelevel-bpe" else strip_marker(t, scheme)[0]
        s = script_of(text)
        totals[s] += 1
        if i in bad:
            under[s] += 1
    rows = [ScriptShare(s, n, under[s]) for s, n in totals.items()]
    return sorted(rows, key=lambda r: (-r.share, -r.tokens, r.script))
