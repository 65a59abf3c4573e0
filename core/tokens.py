"""Text → pieces → ids: the tokenizer side of a lookup.

Three tokenizers cover every matrix we open: :class:`HFTokenizer` wraps a Hugging Face ``tokenizers``
tokenizer read from local files (WordPiece, byte-level BPE with ``Ġ``, SentencePiece with ``▁``),
:class:`SentencePieceTokenizer` encodes with a SentencePiece ``tokenizer.model`` itself, and
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
from typing import Any

from core.errors import FormatError, ParameterError

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

    # What a subclass sets in ``__init__`` (or leaves at these defaults); the properties below read them.
    _special: frozenset[str] = frozenset()
    _unk: str | None = None
    _vocab: dict[str, int] | None = None

    def vocab(self) -> dict[str, int]:
        """Token → id, including added tokens: read once through :meth:`_read_vocab`, then kept."""
        if self._vocab is None:
            self._vocab = self._read_vocab()
        return self._vocab

    def _read_vocab(self) -> dict[str, int]:
        """The whole token → id table, read from the tokenizer (once, by :meth:`vocab`)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither vocab() nor _read_vocab()")

    @property
    def special_tokens(self) -> frozenset[str]:
        """Tokens the tokenizer declares special (added special tokens)."""
        return self._special

    @property
    def unk_token(self) -> str | None:
        """The token the tokenizer falls back to for what it cannot split, if it has one."""
        return self._unk

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
        unk = unk_token or getattr(tok.model, "unk_token", None)
        self._unk = str(unk) if unk else None
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
        _check_text(text)
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

    def _read_vocab(self) -> dict[str, int]:
        return dict(self._tok.get_vocab(with_added_tokens=True))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def save(self, path: Path) -> None:
        """Write the whole tokenizer as one ``tokenizer.json``, which :meth:`from_folder` reads back."""
        self._tok.save(str(path))


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece ``tokenizer.model`` encoded by the ``sentencepiece`` library, as the model was trained.

    SentencePiece pieces carry their own word-start marker (``▁world``), so splitting on whitespace and
    looking words up would pick the wrong rows: the library's own segmentation gives the model's ids.
    The file is data (a protobuf); nothing in it is executed.

    Special tokens are the control pieces (``<s>``, ``</s>``, ``[INST]``...), the user-defined pieces and
    the unknown piece, which is how Hugging Face's conversions of these files declare them.
    """

    scheme = "sentencepiece"

    def __init__(self, processor: object, source: str = "tokenizer.model",
                 user_defined: frozenset[int] = frozenset()) -> None:
        import sentencepiece as spm

        assert isinstance(processor, spm.SentencePieceProcessor)
        self._sp = processor
        self.source = source
        n = processor.get_piece_size()
        self._special_ids = frozenset(i for i in range(n) if processor.is_control(i) or processor.is_unknown(i)
                                      or i in user_defined)
        self._special = frozenset(processor.id_to_piece(i) for i in self._special_ids)
        unk = processor.unk_id()
        self._unk = processor.id_to_piece(unk) if 0 <= unk < n else None

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "tokenizer.model",
                   user_defined: frozenset[int] = frozenset()) -> SentencePieceTokenizer:
        """A tokenizer from the bytes of a ``.model`` file.

        Args:
            user_defined: ids of the file's user-defined pieces (the library does not tell them apart).

        Raises:
            FormatError: the sentencepiece library is missing or refuses the file.
        """
        try:
            import sentencepiece as spm
        except ImportError as err:
            raise FormatError(f"{source}: reading a SentencePiece model needs the sentencepiece package "
                              "(pip install sentencepiece)") from err
        try:
            proc = spm.SentencePieceProcessor(model_proto=data)
        except (RuntimeError, OSError, ValueError) as err:
            raise FormatError(f"{source}: sentencepiece could not load the model ({err}); "
                              "pass vocab= to use a plain vocabulary instead") from err
        return cls(proc, source, user_defined)

    def encode(self, text: str, special: bool = False) -> list[Piece]:
        sp = self._sp
        _check_text(text)
        res = _encode_proto(sp, text)
        # SentencePiece spans are byte offsets into the UTF-8 text; pieces want character offsets.
        char_at = _byte_to_char(text)
        pieces: list[Piece] = []
        if special and sp.bos_id() >= 0:
            pieces.append(Piece(sp.id_to_piece(sp.bos_id()), sp.bos_id(), 0, 0, special=True))
        for p in res.pieces:
            id_ = int(p.id)
            pieces.append(Piece(str(p.piece), id_, char_at[p.begin], char_at[p.end],
                                unknown=bool(sp.is_unknown(id_))))
        return pieces

    def _read_vocab(self) -> dict[str, int]:
        sp = self._sp
        return {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids``; special pieces are written out (``<s>``), as Hugging Face's decode does."""
        sp = self._sp
        n = sp.get_piece_size()
        out: list[str] = []
        run: list[int] = []

        def flush() -> None:
            text = str(sp.decode(run))
            # sentencepiece drops the dummy-prefix space of every run; only the text's start has one.
            if out and str(sp.id_to_piece(run[0])).startswith("▁") and not text.startswith(" "):
                text = " " + text
            out.append(text)
            run.clear()

        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                continue
            if i in self._special_ids:
                if run:
                    flush()
                out.append(str(sp.id_to_piece(i)))
            else:
                run.append(i)
        if run:
            flush()
        return "".join(out)


def _check_text(text: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate, e.g. undecodable bytes in a command line)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ParameterError(f"text: character {err.start} ({text[err.start]!r}) is a lone surrogate, not valid "
                             "Unicode; pass the text as UTF-8") from err


def _encode_proto(sp: Any, text: str) -> Any:
    """Pieces with ids and byte spans: ``return_type='proto'`` in newer sentencepiece releases, where
    ``out_type='immutable_proto'`` is refused; older ones only know the latter."""
    try:
        return sp.encode(text, return_type="proto")
    except TypeError:
        return sp.encode(text, out_type="immutable_proto")


def _byte_to_char(text: str) -> list[int]:
    """Character offset of every UTF-8 byte offset of ``text`` (and of its end)."""
    out: list[int] = []
    for ci, ch in enumerate(text):
        out.extend([ci] * len(ch.encode("utf-8", "surrogatepass")))
    out.append(len(text))
    return out


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
        return dict(self._k2i)  # a copy each time, not kept: the matrix holds the mapping already


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
