"""PyTorch checkpoints (``pytorch_model.bin``, Meta ``consolidated.00.pth``), read with ``weights_only``.

``torch.load(weights_only=True)`` refuses any pickle global that is not a tensor type; we turn that
refusal into :class:`~core.errors.UnsafeFileError` so that hostile checkpoints end in one clear message.

Read only: we never write ``.bin``/``.pth``/``.pt``. They are pickles, and Embedscope writes no file that a
reader must unpickle (and so trust) to open; safetensors (:mod:`core.loaders._safetensors`) holds the same
tensor safely.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from core.errors import FormatError, UnsafeFileError


def _flatten(obj: dict[object, object], prefix: str, out: dict[str, object]) -> None:
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, name + ".", out)
        else:
            out[name] = v


def _refuse_compressed(path: Path) -> None:
    """torch writes every record stored; a compressed one would be read (memory-mapped) as garbage values."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            packed = [i.filename for i in z.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise FormatError(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {str(err)[:200]})") from err
    if packed:
        raise FormatError(f"{path}: record {packed[0]!r} is compressed; torch stores records uncompressed, so "
                          "this file was repacked (re-save it with torch.save, or convert it to safetensors)")


def load_state_dict(path: Path) -> dict[str, object]:
    """Every tensor in a torch checkpoint, memory-mapped where the format allows.

    Raises:
        UnsafeFileError: the pickle asks for a global other than tensor types.
        FormatError: truncated or not a torch checkpoint.
    """
    import torch

    _refuse_compressed(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in str(err) or "global" in str(err).lower():
            raise UnsafeFileError(
                f"{path}: refused to unpickle it, because it asks to run code that is not a tensor "
                f"({first[:200]}); only open checkpoints you trust, or convert them to safetensors") from err
        raise FormatError(f"{path}: not a readable torch checkpoint ({first[:200]})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            TypeError, IndexError, KeyError, OverflowError, MemoryError, RecursionError) as err:
        raise FormatError(f"{path}: not a readable torch checkpoint, or truncated "
                          f"({type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a state dict (a mapping of names to tensors), "
                          f"got {type(obj).__name__}")
    flat: dict[str, object] = {}
    _flatten(obj, "", flat)
    return {k: v for k, v in flat.items() if isinstance(v, torch.Tensor)}


def shape_of(t: object) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)  # type: ignore[attr-defined]


def dtype_name(t: object) -> str:
    return str(t.dtype).removeprefix("torch.")  # type: ignore[attr-defined]


def to_float32(t: object, path: Path, name: str) -> np.ndarray:
    """A float tensor as float32 numpy (no copy for float32)."""
    import torch

    assert isinstance(t, torch.Tensor)
    if not t.is_floating_point():
        raise FormatError(f"{path}: tensor {name!r} holds {t.dtype}, not floats; choose another with tensor=")
    t = t.detach()
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return t.contiguous().numpy()
