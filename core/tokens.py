"""Text → pieces → ids: the tokenizer side of a lookup.

Two tokenizers cover every matrix we open: :class:`HFTokenizer` wraps a Hugging Face ``tokenizers``
tokenizer read from local files (WordPiece, byte-level BPE with ``Ġ``, SentencePiece with ``▁``), and
:class:`WordTokenizer` splits on whitespace and looks words up in a plain vocabulary (word2vec, GloVe,
Paddle vocabularies). :func:`token_kinds` labels every vocabulary entry with its kind.
"""

from __future__ import annotations

import json
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import FormatError

#: The kinds a vocabulary entry can have, in the order the UI lists them.
KINDS = ("special", "word", "subword", "number", "punctuation", "cjk", "other", "unassigned")

_CJK_RE = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f]"
)
_NUMBER_RE = re.compile(r"^[+-]?(\d+([.,]\d+)*|\d*\.\d+)%?$")


@dataclass(frozen=True)
class Piece:
    """One piece of a tokenised text.

    Attributes:
        token: the vocabulary entry (as stored, with ``##``/``Ġ``/``▁`` markers).
        id: its row in the matrix, or -1 when the vocabulary has no entry for it.
        start, end: character span of the piece in the input text.
        unknown: the tokenizer fell back to its unknown token, or the word is missing.
        special: a special token such as ``[CLS]`` added by the tokenizer.
    """

    token: str
    id: int
    start: int
    end: int
    unknown: bool = False
    special: bool = False


class Tokenizer(ABC):
    """What a matrix needs from a tokenizer."""

    #: "wordpiece", "bpe", "bytelevel-bpe", "sentencepiece", "wordlevel" or "words".
    scheme: str
    #: Where the tokenizer came from (a file name), for provenance.
    source: str

    @abstractmethod
    def encode(self, text: str, special: bool = False) -> list[Piece]:
        """Split ``text`` into pieces; ``special`` adds [CLS]/[SEP]-like tokens."""

    @abstractmethod
    def vocab(self) -> dict[str, int]:
        """Token → id, including added tokens."""

    @property
    @abstractmethod
    def special_tokens(self) -> frozenset[str]:
        """Tokens the tokenizer declares special (added special tokens)."""

    @property
    def unk_token(self) -> str | None:
        return None

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids``; plain concatenation unless the tokenizer knows better."""
        inv = {i: t for t, i in self.vocab().items()}
        return " ".join(inv.get(i, "") for i in ids)


class HFTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` read from local files only."""

    def __init__(self, tok: object, source: str, unk_token: str | None = None) -> None:
        from tokenizers import Tokenizer as _T

        assert isinstance(tok, _T)
        # Lookups want every piece of the text, unpadded: a saved tokenizer may pad or truncate.
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self.source = source
        self._vocab: dict[str, int] | None = None
        # Read the pieces' configs from the small component states, not the whole serialised vocabulary.
        mtype = type(tok.model).__name__
        shape = b" ".join(c.__getstate__() for c in (tok.pre_tokenizer, tok.decoder, tok.normalizer)
                          if c is not None).decode("utf-8", "replace")
        if mtype == "WordPiece":
            self.scheme = "wordpiece"
        elif mtype == "Unigram" or "Metaspace" in shape or "\\u2581" in shape or "▁" in shape:
            self.scheme = "sentencepiece"
        elif mtype == "BPE":
            self.scheme = "bytelevel-bpe" if "ByteLevel" in shape else "bpe"
        else:
            self.scheme = "wordlevel"
        self._unk = unk_token or getattr(tok.model, "unk_token", None)
        self._special = frozenset(
            t.content for t in tok.get_added_tokens_decoder().values() if t.special
        )

    @classmethod
    def from_folder(cls, folder: Path) -> HFTokenizer | None:
        """The tokenizer in a model folder, or None when it holds no tokenizer files."""
        from tokenizers import Tokenizer as _T

        cfg: dict[str, object] = {}
        cfg_path = folder / "tokenizer_config.json"
        if cfg_path.is_file():
            try:
                loaded = json.loads(cfg_path.read_text(encoding="utf-8"))
                cfg = loaded if isinstance(loaded, dict) else {}
            except (ValueError, UnicodeDecodeError) as err:
                raise FormatError(f"{cfg_path}: not valid JSON ({err}); fix or remove the file") from err
        tj = folder / "tokenizer.json"
        try:
            if tj.is_file():
                return cls(_T.from_file(str(tj)), "tokenizer.json")
            if (folder / "vocab.txt").is_file():
                from tokenizers.implementations import BertWordPieceTokenizer

                lower = bool(cfg.get("do_lower_case", True))
                bert = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lower)
                return cls(bert._tokenizer, "vocab.txt", unk_token="[UNK]")
            if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
                from tokenizers.implementations import ByteLevelBPETokenizer

                bpe = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
                return cls(bpe._tokenizer, "vocab.json + merges.txt")
        except Exception as err:  # the tokenizers library raises plain Exception subclasses
            raise FormatError(
                f"{folder}: the tokenizer files could not be read ({err}); "
                "pass vocab= to use a plain vocabulary instead"
            ) from err
        return None

    def encode(self, text: str, special: bool = False) -> list[Piece]:
        enc = self._tok.encode(text, add_special_tokens=special)
        unk = self._unk
        pieces = []
        for tok, id_, (s, e), stm in zip(enc.tokens, enc.ids, enc.offsets, enc.special_tokens_mask,
                                        strict=True):
            is_special = bool(stm) and tok in self._special
            pieces.append(Piece(tok, int(id_), int(s), int(e), unknown=(unk is not None and tok == unk
                                                                       and text[s:e] != unk),
                                special=is_special))
        return pieces

    def vocab(self) -> dict[str, int]:
        if self._vocab is None:
            self._vocab = dict(self._tok.get_vocab(with_added_tokens=True))
        return self._vocab

    @property
    def special_tokens(self) -> frozenset[str]:
        return self._special

    @property
    def unk_token(self) -> str | None:
        return str(self._unk) if self._unk else None

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def save(self, path: Path) -> None:
        """Write the whole tokenizer as one ``tokenizer.json``, which :meth:`from_folder` reads back."""
        self._tok.save(str(path))


class WordTokenizer(Tokenizer):
    """Whitespace split and exact lookup in a word vocabulary (word2vec, GloVe, Paddle vocab files).

    Args:
        key_to_index: the matrix's token → row mapping (shared, not copied).
        cjk_chars: split runs of CJK characters that are not in the vocabulary into single characters.
    """

    scheme = "words"

    def __init__(self, key_to_index: Mapping[str, int], source: str = "vocabulary",
                 cjk_chars: bool = True) -> None:
        self._k2i = key_to_index
        self.source = source
        self.cjk_chars = cjk_chars

    def encode(self, text: str, special: bool = False) -> list[Piece]:
        pieces: list[Piece] = []
        for m in re.finditer(r"\S+", text):
            word, s = m.group(), m.start()
            idx = self._k2i.get(word)
            if idx is not None:
                pieces.append(Piece(word, idx, s, m.end()))
            elif self.cjk_chars and _CJK_RE.search(word) and all(c in self._k2i for c in word):
                pieces.extend(Piece(c, self._k2i[c], s + i, s + i + 1) for i, c in enumerate(word))
            else:
                pieces.append(Piece(word, -1, s, m.end(), unknown=True))
        return pieces

    def vocab(self) -> dict[str, int]:
        return dict(self._k2i)

    @property
    def special_tokens(self) -> frozenset[str]:
        return frozenset()


def strip_marker(token: str, scheme: str) -> tuple[str, bool]:
    """The token's text without its subword/word-start marker, and whether it continues a word."""
    if scheme == "wordpiece":
        return (token[2:], True) if token.startswith("##") and len(token) > 2 else (token, False)
    if scheme == "bytelevel-bpe":
        return (token[1:], False) if token.startswith("Ġ") else (token, True)
    if scheme == "sentencepiece":
        return (token[1:], False) if token.startswith("▁") else (token, True)
    return token, False


def _kind(token: str, special: frozenset[str], scheme: str) -> str:
    if token in special:
        return "special"
    core, continues = strip_marker(token, scheme)
    if not core.strip():
        return "other"
    if _CJK_RE.search(core):
        return "cjk"
    if _NUMBER_RE.match(core):
        return "number"
    if all(unicodedata.category(c)[0] in "PS" for c in core):
        return "punctuation"
    if continues:
        return "subword"
    if any(c.isalpha() for c in core):
        return "word"
    return "other"


def token_kinds(tokens: Sequence[str], special: frozenset[str] = frozenset(), scheme: str = "words",
                unassigned_from: int | None = None) -> list[str]:
    """Kind of every token (see :data:`KINDS`); rows from ``unassigned_from`` on are "unassigned"."""
    kinds = [_kind(t, special, scheme) for t in tokens]
    if unassigned_from is not None:
        for i in range(unassigned_from, len(kinds)):
            kinds[i] = "unassigned"
    return kinds
