"""The piece list of a SentencePiece ``tokenizer.model``, read with a minimal protobuf reader.

Only ``ModelProto.pieces[].piece`` (field 1, then field 1) is read; nothing is executed and no
sentencepiece install is needed.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import FormatError


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


def read_pieces(path: Path) -> list[str]:
    """The vocabulary of a SentencePiece model, in id order.

    Raises:
        FormatError: the file is not a SentencePiece model.
    """
    buf = path.read_bytes()
    pieces: list[str] = []
    for field, wire, val in _fields(buf, path):
        if field == 1 and wire == 2 and isinstance(val, bytes):
            inner = [v for f, w, v in _fields(val, path) if f == 1 and w == 2]
            if not inner or not isinstance(inner[0], bytes):
                raise FormatError(f"{path}: piece {len(pieces)} has no text")
            pieces.append(inner[0].decode("utf-8", "replace"))
    if not pieces:
        raise FormatError(f"{path}: no pieces found; not a SentencePiece model")
    seen: set[str] = set()
    for i, p in enumerate(pieces):
        if p in seen:
            pieces[i] = f"{p}[{i}]"
        seen.add(pieces[i])
    return pieces
