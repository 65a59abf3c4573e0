"""safetensors, read by header first and memory-mapped.

We parse the header ourselves (8-byte length, JSON, data) so that a hostile header is refused with a
message naming the file and tensor, and so that only the tensor asked for is ever touched. F32 tensors
are memory-mapped without a copy; F16/BF16/F64 are converted to float32 in chunks.

Writing goes through the ``safetensors`` library, in one place (:func:`write_tensors`): exports, quantised
copies and fine-tuning runs all call it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import FormatError

#: The tensor name in the safetensors Embedscope exports: one the Hugging Face loader finds without ``tensor=``.
TENSOR_NAME = "word_embeddings.weight"
#: The weights file in a folder Embedscope writes.
WEIGHTS_FILE = "model.safetensors"

_MAX_HEADER = 100 * 1024 * 1024
_HUGE_MIN = 64 * 1024 * 1024
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
             "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_FLOAT = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset in the file
    end: int

    @property
    def numpy_dtype(self) -> str:
        """The dtype name as the UI shows it ("bfloat16", "float32", ...)."""
        return _FLOAT.get(self.dtype, self.dtype.lower())


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor table of one safetensors file, validated; no tensor data is read.

    Raises:
        FormatError: truncated file, header length past the end, bad JSON, unknown dtype, offsets out of
            range or overlapping, or a size that does not match the shape.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FormatError(f"{path}: truncated safetensors file ({size} bytes; the header length "
                              "alone takes 8)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > _MAX_HEADER:
            raise FormatError(f"{path}: safetensors header length {n} is larger than the file "
                              f"({size} bytes); the file is truncated or not safetensors")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: safetensors header is not valid JSON ({err})") from err
    except RecursionError as err:
        raise FormatError(f"{path}: safetensors header is JSON nested too deeply to read; not a safetensors "
                          "file") from err
    if not isinstance(header, dict):
        raise FormatError(f"{path}: safetensors header must be a JSON object")
    data_start = 8 + n
    data_len = size - data_start
    out: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise FormatError(f"{path}: tensor {name!r} needs dtype, shape and data_offsets in the header")
        dtype = entry["dtype"]
        if dtype not in _ITEMSIZE:
            raise FormatError(f"{path}: tensor {name!r} has dtype {dtype!r}, which we do not know; "
                              f"expected one of {', '.join(sorted(_ITEMSIZE))}")
        shape = entry["shape"]
        offsets = entry["data_offsets"]
        if (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)):
            raise FormatError(f"{path}: tensor {name!r} has a malformed shape or data_offsets")
        b, e = offsets
        if not 0 <= b <= e <= data_len:
            raise FormatError(f"{path}: tensor {name!r} data_offsets [{b}, {e}] fall outside the "
                              f"{data_len} data bytes; the file is truncated or corrupt")
        if e - b != math.prod(shape) * _ITEMSIZE[dtype]:
            raise FormatError(f"{path}: tensor {name!r} holds {e - b} bytes but shape {shape} of "
                              f"{dtype} needs {math.prod(shape) * _ITEMSIZE[dtype]}")
        spans.append((b, e, name))
        out[name] = TensorInfo(name, dtype, tuple(shape), path, data_start + b, data_start + e)
    spans.sort()
    for (b1, e1, n1), (b2, _e2, n2) in itertools.pairwise(spans):
        if b2 < e1:
            raise FormatError(f"{path}: tensors {n1!r} and {n2!r} overlap in the file (offsets "
                              f"{b1}-{e1} and {b2}-); refusing a corrupt or crafted file")
    return out


def alloc_float32(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array; large ones are backed by transparent huge pages where Linux offers them.

    Filling a fresh gigabyte in 4 KiB pages costs about a page fault per page; huge pages cut that 512-fold,
    which is most of the time it takes to widen a bf16 checkpoint.
    """
    nbytes = math.prod(shape) * 4
    if nbytes >= _HUGE_MIN and hasattr(mmap, "MADV_HUGEPAGE"):
        buf = mmap.mmap(-1, nbytes)
        with contextlib.suppress(OSError):
            buf.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(buf, dtype=np.float32).reshape(shape)
    return np.empty(shape, dtype=np.float32)


def bf16_to_float32(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Widen bfloat16 bits (uint16) to float32 in chunks, through one reused scratch buffer."""
    result = alloc_float32(raw.shape) if out is None else out
    bits = result.reshape(-1).view(np.uint32)
    src = raw.reshape(-1)
    step = 1 << 20
    scratch = np.empty(min(step, max(1, src.size)), dtype=np.uint32)
    for s in range(0, src.size, step):
        k = min(step, src.size - s)
        np.copyto(scratch[:k], src[s:s + k], casting="unsafe")
        np.left_shift(scratch[:k], 16, out=bits[s:s + k])
    return result


def read_tensor(info: TensorInfo) -> np.ndarray:
    """The tensor as a float32 array: memory-mapped for F32, converted otherwise.

    Raises:
        FormatError: the tensor does not hold floats.
    """
    if info.dtype not in _FLOAT:
        raise FormatError(f"{info.file}: tensor {info.name!r} holds {info.dtype}, not floats; "
                          "choose an embedding tensor with tensor=")
    count = math.prod(info.shape)
    if count == 0:
        return np.zeros(info.shape, dtype=np.float32)
    src_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}[info.dtype]
    mm = np.memmap(info.file, dtype=src_dtype, mode="r", offset=info.start, shape=info.shape)
    if info.dtype == "F32":
        return mm
    if info.dtype == "BF16":
        return bf16_to_float32(mm)
    out = alloc_float32(info.shape)
    step = max(1, (1 << 22) // max(1, math.prod(info.shape[1:])))
    for s in range(0, info.shape[0], step):
        out[s:s + step] = mm[s:s + step]
    return out


def file_size(path: Path) -> int:
    return os.stat(path).st_size


# -- writing ---------------------------------------------------------------------------------------

def write_tensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str], *,
                  bf16: bool = False) -> None:
    """Write tensors and string metadata to one safetensors file, through the ``safetensors`` library.

    Args:
        bf16: the arrays hold the bits of bfloat16 values (uint16, as :func:`bf16_to_float32` reads them);
            numpy has no bfloat16 type, so they go through ``safetensors.torch``, reinterpreted rather than
            converted, so that the file holds exactly those values.
    """
    if bf16:
        import torch
        from safetensors.torch import save_file as save_torch

        save_torch({name: torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(torch.bfloat16)
                    for name, arr in tensors.items()}, str(path), metadata=dict(metadata))
        return
    from safetensors.numpy import save_file

    save_file({name: np.ascontiguousarray(arr) for name, arr in tensors.items()}, str(path),
              metadata=dict(metadata))


def write_float32(folder: Path, vectors: np.ndarray, source_tensor: str | None = None) -> tuple[list[str], list[str]]:
    """``model.safetensors`` in ``folder`` holding ``vectors`` as one F32 tensor named :data:`TENSOR_NAME`.

    Returns:
        the file names written, and a note naming the tensor.
    """
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    meta = {"format": "np", "written_by": "embedscope", "rows": str(arr.shape[0]), "dim": str(arr.shape[1])}
    if source_tensor:
        meta["source_tensor"] = source_tensor
    write_tensors(folder / WEIGHTS_FILE, {TENSOR_NAME: arr}, meta)
    return [WEIGHTS_FILE], [f"the tensor is named {TENSOR_NAME!r}"]
