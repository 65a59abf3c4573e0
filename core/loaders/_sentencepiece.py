"""A SentencePiece ``tokenizer.model`` beside the weights: its pieces, and the tokenizer that encodes with it.

:func:`read_model` reads ``ModelProto.pieces[]`` (field 1; a piece's text is its field 1, its type field 3)
with a minimal protobuf reader, so a malformed file is refused with a message naming the byte before the
sentencepiece library sees it. :func:`sentencepiece_vocab` then encodes with the ``sentencepiece`` library,
so lookups give the model's own ids. Nothing in the file is executed.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import FormatError
from core.loaders._common import Vocab, vocab_from_tokenizer
from core.tokens import SentencePieceTokenizer


def _varint(buf: bytes, pos: int, path: Path) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise FormatError(f"{path}: truncated or malformed protobuf at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, path: Path) -> list[tuple[int, int, bytes | int]]:
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos, path)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            val, pos = _varint(buf, pos, path)
            out.append((field, wire, val))
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos, path)
            if pos + n > len(buf):
                raise FormatError(f"{path}: truncated protobuf field {field} at byte {pos}")
            out.append((field, wire, buf[pos:pos + n]))
            pos += n
        elif wire == 5:
            pos += 4
        else:
            raise FormatError(f"{path}: unsupported protobuf wire type {wire} at byte {pos}")
    return out


#: ``ModelProto.SentencePiece.Type`` values (field 3; absent means NORMAL).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def read_model(path: Path) -> list[tuple[str, int]]:
    """Every piece of a SentencePiece model with its type, in id order.

    Raises:
        FormatError: the file is not a SentencePiece model.
    """
    buf = path.read_bytes()
    pieces: list[tuple[str, int]] = []
    for field, wire, val in _fields(buf, path):
        if field == 1 and wire == 2 and isinstance(val, bytes):
            inner = _fields(val, path)
            text = [v for f, w, v in inner if f == 1 and w == 2]
            kind = [v for f, w, v in inner if f == 3 and w == 0]
            if not text or not isinstance(text[0], bytes):
                raise FormatError(f"{path}: piece {len(pieces)} has no text")
            pieces.append((text[0].decode("utf-8", "replace"), int(kind[-1]) if kind else NORMAL))
    if not pieces:
        raise FormatError(f"{path}: no pieces found; not a SentencePiece model")
    return pieces


def read_pieces(path: Path) -> list[str]:
    """The vocabulary of a SentencePiece model, in id order (a repeated piece gets its id appended).

    Raises:
        FormatError: the file is not a SentencePiece model.
    """
    pieces = [p for p, _ in read_model(path)]
    seen: set[str] = set()
    for i, p in enumerate(pieces):
        if p in seen:
            pieces[i] = f"{p}[{i}]"
        seen.add(pieces[i])
    return pieces


def sentencepiece_vocab(path: Path, rows: int) -> Vocab:
    """Tokens and tokenizer for a matrix of ``rows`` rows from a SentencePiece model file.

    Raises:
        FormatError: the file is not a SentencePiece model, or sentencepiece cannot load it.
    """
    pieces = read_model(path)
    # The sentencepiece library does not say which pieces are user-defined; the file does.
    user_defined = frozenset(i for i, (_, kind) in enumerate(pieces) if kind == USER_DEFINED)
    tok = SentencePieceTokenizer.from_bytes(path.read_bytes(), source=path.name, user_defined=user_defined)
    if len(tok.vocab()) != len(pieces):
        raise FormatError(f"{path}: holds {len(pieces)} pieces but sentencepiece reads {len(tok.vocab())}; "
                          "the file is damaged")
    return vocab_from_tokenizer(tok, rows)
