"""PaddlePaddle ``.pdparams``, read without paddle through a restricted unpickler.

``paddle.save(layer.state_dict(), path)`` writes a pickle of numpy arrays. We allow exactly the globals
that rebuild a numpy array (and an ordered dict around them) and refuse everything else before it runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from core.errors import FormatError, UnsafeFileError

_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, f: io.BufferedIOBase, path: Path) -> None:
        super().__init__(f)
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafeFileError(f"{self._path}: refused to unpickle global {module}.{name}; a .pdparams file "
                              "may hold only numpy arrays. Do not open files you do not trust.")

    def persistent_load(self, pid: object) -> object:
        raise UnsafeFileError(f"{self._path}: refused a persistent id in the pickle; .pdparams holds arrays only")


def load_pdparams(path: Path) -> dict[str, np.ndarray]:
    """All arrays in a ``.pdparams`` file, flattened to dotted names.

    Raises:
        UnsafeFileError: the pickle references anything but numpy array reconstruction.
        FormatError: truncated or not a pickle of arrays.
    """
    try:
        with path.open("rb") as f:
            obj = _ArraysOnly(f, path).load()
    except UnsafeFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError) as err:
        raise FormatError(f"{path}: not a readable .pdparams file, or truncated "
                          f"({type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a state dict of arrays, got {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}

    def walk(d: dict[object, object], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif isinstance(v, np.ndarray):
                if v.dtype == object:
                    raise UnsafeFileError(f"{path}: array {prefix}{k} has object dtype; refused")
                out[f"{prefix}{k}"] = v
    walk(obj, "")
    return out
