"""The header of a GGUF file (metadata and tensor table), parsed in one pass over a memory map.

gguf's own ``GGUFReader`` builds a numpy view for every string of the metadata: for a 49k-token vocabulary that
is about 3 s before a byte of the table is read, which is most of the time a user waits. This reader walks the
same layout with ``struct`` over one buffer, checks every length and count against what the file holds before
it allocates, and leaves the tensor data memory-mapped; the tensor types, their block sizes and the
dequantisation stay gguf's (``GGML_QUANT_SIZES``, ``dequantize``).

Layout (GGUF v2/v3, little-endian): ``GGUF``, version u32, tensor count u64, metadata count u64; each metadata
entry is a key string, a value type u32 and the value; each tensor entry is a name, the number of dimensions
u32, the dimensions u64 each, the type u32 and the data offset u64 (from the aligned start of the data).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FormatError

_SCALARS: dict[int, tuple[str, int]] = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4),
                                        5: ("<i", 4), 6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8),
                                        12: ("<d", 8)}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8",
          12: "<f8"}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 4


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the table: its type (a ``GGMLQuantizationType`` number), shape as GGUF lists it
    (fastest-moving first), and where its bytes are."""

    name: str
    qtype: int
    dims: tuple[int, ...]
    start: int
    nbytes: int


@dataclass
class GGUFFile:
    """A parsed header over the memory map that keeps the tensor data."""

    path: Path
    version: int
    fields: dict[str, Any]
    tensors: dict[str, TensorEntry]
    buffer: mmap.mmap

    def field(self, key: str) -> Any:
        return self.fields.get(key)

    def raw(self, t: TensorEntry) -> np.ndarray:
        """The tensor's bytes, read-only and not copied."""
        return np.frombuffer(self.buffer, dtype=np.uint8, count=t.nbytes, offset=t.start)


class _Cursor:
    def __init__(self, path: Path, buf: mmap.mmap) -> None:
        self.path, self.buf, self.pos, self.size = path, buf, 0, len(buf)

    def fail(self, what: str) -> FormatError:
        return FormatError(f"{self.path}: {what} at byte {self.pos:,} of {self.size:,}; the header, metadata or "
                           "tensor table is truncated or malformed")

    def take(self, fmt: str, n: int) -> Any:
        if self.pos + n > self.size:
            raise self.fail("the file ends inside the header")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self) -> str:
        n = self.take("<Q", 8)
        if n > self.size - self.pos:
            raise self.fail(f"a string declares {n:,} bytes")
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "replace")

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALARS:
            fmt, n = _SCALARS[vtype]
            return self.take(fmt, n)
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype = self.take("<I", 4)
            count = self.take("<Q", 8)
            if itype in _SCALARS:
                width = _SCALARS[itype][1]
                if count > (self.size - self.pos) // width:
                    raise self.fail(f"metadata {key!r} declares {count:,} values")
                arr = np.frombuffer(self.buf, dtype=_NUMPY[itype], count=count, offset=self.pos).copy()
                self.pos += count * width
                return arr.astype(bool) if itype == 7 else arr
            if itype == _STRING:
                if count > (self.size - self.pos) // 8:
                    raise self.fail(f"metadata {key!r} declares {count:,} strings")
                return self._strings(count, key)
            raise self.fail(f"metadata {key!r} is an array of type {itype}, which GGUF does not define for arrays")
        raise self.fail(f"metadata {key!r} has value type {vtype}, which GGUF does not define")

    def _strings(self, count: int, key: str) -> list[str]:
        buf, pos, size = self.buf, self.pos, self.size
        unpack = struct.Struct("<Q").unpack_from
        out: list[str] = []
        append = out.append
        for _ in range(count):
            if pos + 8 > size:
                self.pos = pos
                raise self.fail(f"metadata {key!r} ends after {len(out):,} of {count:,} strings")
            (n,) = unpack(buf, pos)
            pos += 8
            if n > size - pos:
                self.pos = pos
                raise self.fail(f"string {len(out):,} of metadata {key!r} declares {n:,} bytes")
            append(buf[pos:pos + n].decode("utf-8", "replace"))
            pos += n
        self.pos = pos
        return out


def read_gguf_header(path: Path) -> GGUFFile:
    """Metadata and tensor table of ``path``; tensor data stays in the memory map.

    Raises:
        FormatError: not GGUF, a version we do not read, or any length, count or offset past the file's end.
    """
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    with path.open("rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as err:  # an empty file cannot be mapped
            raise FormatError(f"{path}: the file is empty; not a GGUF file") from err
    c = _Cursor(path, buf)
    if c.take("4s", 4) != b"GGUF":
        raise FormatError(f"{path}: does not start with the GGUF magic")
    version = c.take("<I", 4)
    if version not in (2, 3):
        raise FormatError(f"{path}: GGUF version {version}; Embedscope reads versions 2 and 3 (little-endian)")
    n_tensors, n_fields = c.take("<Q", 8), c.take("<Q", 8)
    # each metadata entry takes at least 12 bytes and each tensor entry at least 24
    if n_fields > c.size // 12 or n_tensors > c.size // 24:
        raise c.fail(f"the header declares {n_fields:,} metadata entries and {n_tensors:,} tensors")
    fields: dict[str, Any] = {}
    for _ in range(n_fields):
        key = c.string()
        fields[key] = c.value(c.take("<I", 4), key)
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.take("<I", 4)
        if not 1 <= n_dims <= _MAX_DIMS:
            raise c.fail(f"tensor {name!r} declares {n_dims} dimensions")
        dims = tuple(c.take("<Q", 8) for _ in range(n_dims))
        infos.append((name, dims, c.take("<I", 4), c.take("<Q", 8)))
    align = fields.get("general.alignment", 32)
    if not isinstance(align, int) or align < 1 or align & (align - 1):
        raise FormatError(f"{path}: general.alignment = {align!r}; it must be a power of two")
    data_start = -(-c.pos // align) * align
    tensors: dict[str, TensorEntry] = {}
    for name, dims, qtype, offset in infos:
        try:
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
        except (ValueError, KeyError) as err:
            raise FormatError(f"{path}: tensor {name!r} has type {qtype}, which the gguf package does not know; "
                              "update gguf or convert the file with llama.cpp") from err
        elements = 1
        for d in dims:
            elements *= d
        if dims[0] % block:
            raise FormatError(f"{path}: tensor {name!r} rows of {dims[0]} values are not whole "
                              f"{GGMLQuantizationType(qtype).name} blocks of {block}")
        nbytes = elements // block * size
        start = data_start + offset
        if start + nbytes > c.size:
            raise FormatError(f"{path}: tensor {name!r} ({GGMLQuantizationType(qtype).name}, "
                              f"{' × '.join(str(d) for d in reversed(dims))}) needs {nbytes:,} bytes from byte "
                              f"{start:,} but the file has {c.size:,}; the file is truncated")
        if name in tensors:
            raise FormatError(f"{path}: tensor {name!r} appears twice in the table")
        tensors[name] = TensorEntry(name, qtype, dims, start, nbytes)
    return GGUFFile(path, version, fields, tensors, buf)
