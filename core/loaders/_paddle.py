"""PaddlePaddle ``.pdparams``, read without paddle through a restricted unpickler.

``paddle.save(layer.state_dict(), path)`` writes a pickle of numpy arrays. We allow exactly the globals
that rebuild a numpy array (and an ordered dict around them) and refuse everything else before it runs.
The allowed names are not handed the real numpy callables: each is a stand-in that builds an array only
from bytes the file holds, of exactly the size its shape and dtype declare. ``numpy.ndarray(shape, dtype)``
called on its own (an array of whatever the heap held) and hand-made dtype states are refused.

Read only: we never write ``.pdparams``. It is a pickle, and Embedscope writes no file that a reader must
unpickle (and so trust) to open; ``.npy`` (:mod:`core.loaders._arrays`) carries the same array safely.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from pathlib import Path

import numpy as np

from core.errors import FormatError, UnsafeFileError

#: Simple numeric dtypes only (as numpy pickles them: kind + item size); no objects, records or strings.
_DTYPE_NAME = re.compile(r"^[<>|=]?(f2|f4|f8|i1|i2|i4|i8|u1|u2|u4|u8|b1)$")
#: Nested dicts deeper than this are not a state dict (and would exhaust the stack when flattened).
_MAX_DEPTH = 32


class _Dtype:
    """Stands for ``numpy.dtype(name, align, copy)`` until BUILD gives its byte order."""

    def __init__(self, path: Path, *args: object) -> None:
        name = args[0] if args else None
        if not isinstance(name, str) or not _DTYPE_NAME.match(name):
            raise UnsafeFileError(f"{path}: the pickle asks for dtype {str(name)[:40]!r}; a .pdparams array may "
                                  "only be a plain number type (float, int, uint, bool)")
        self.path = path
        self.dtype = np.dtype(name)

    def __setstate__(self, state: object) -> None:
        # numpy's own state for a plain dtype, and nothing else: (3, byteorder, None, None, None, -1, -1, 0)
        if (not isinstance(state, tuple) or len(state) != 8 or state[0] != 3 or state[1] not in ("<", ">", "|", "=")
                or state[2:] != (None, None, None, -1, -1, 0)):
            raise UnsafeFileError(f"{self.path}: the pickle gives a dtype state {str(state)[:80]}; only plain "
                                  "number types are read")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """What ``_reconstruct(ndarray, (0,), b'b')`` returns: an array that exists once BUILD gives its bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafeFileError(f"{self.path}: the pickle gives an array state that numpy never writes; refused")
        _version, shape, dtype, fortran, data = state
        self.array = _from_bytes(self.path, data, dtype, shape, "F" if fortran else "C")


def _from_bytes(path: Path, data: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """An array over ``data`` (bytes from the file), refusing any size mismatch."""
    if not isinstance(dtype, _Dtype):
        raise UnsafeFileError(f"{path}: an array's dtype is not a plain numpy dtype; refused")
    if not isinstance(data, bytes | bytearray):  # a list here means an object array: refused
        raise UnsafeFileError(f"{path}: an array's data is {type(data).__name__}, not bytes; only arrays of "
                              "numbers are read")
    if (not isinstance(shape, tuple) or len(shape) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise FormatError(f"{path}: an array declares the shape {str(shape)[:80]}; expected non-negative integers")
    need = math.prod(shape) * dtype.dtype.itemsize
    if need != len(data):
        raise FormatError(f"{path}: an array declares shape {list(shape)} of {dtype.dtype} ({need:,} bytes) but "
                          f"the file holds {len(data):,} bytes for it; the file is truncated or crafted")
    if order not in ("C", "F"):
        raise FormatError(f"{path}: an array declares order {str(order)[:10]!r}; expected 'C' or 'F'")
    return np.frombuffer(data, dtype=dtype.dtype).reshape(shape, order=order)


class _ArraysOnly(pickle.Unpickler):
    def __init__(self, f: io.BufferedIOBase, path: Path) -> None:
        super().__init__(f)
        self._path = path

    def find_class(self, module: str, name: str) -> object:
        path = self._path
        if (module, name) in {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct")}:
            return self._reconstruct
        if (module, name) in {("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer")}:
            return lambda buf, dtype, shape, order="C": _from_bytes(path, buf, dtype, shape, order)
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return lambda *args: _Dtype(path, *args)
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if (module, name) == ("_codecs", "encode"):  # protocol 2 writes bytes as latin-1 text
            return self._latin1
        raise UnsafeFileError(f"{path}: refused to unpickle global {module}.{name}; a .pdparams file "
                              "may hold only numpy arrays. Do not open files you do not trust.")

    def _reconstruct(self, cls: object, shape: object, code: object) -> _Array:
        if cls is not _NDARRAY or shape != (0,) or code != b"b":
            raise UnsafeFileError(f"{self._path}: the pickle rebuilds an array in a way numpy never writes; refused")
        return _Array(self._path)

    def _latin1(self, text: object, encoding: object = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafeFileError(f"{self._path}: the pickle calls _codecs.encode as numpy never does; refused")
        return text.encode("latin1")

    def persistent_load(self, pid: object) -> object:
        raise UnsafeFileError(f"{self._path}: refused a persistent id in the pickle; .pdparams holds arrays only")


class _Ndarray:
    """``numpy.ndarray`` as a name: it may only be passed to ``_reconstruct``, never called for bare memory."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        raise UnsafeFileError("the pickle calls numpy.ndarray(shape, dtype) directly, which makes an array of "
                              "uninitialised memory instead of reading the file's bytes; refused")


_NDARRAY = _Ndarray()


def load_pdparams(path: Path) -> dict[str, np.ndarray]:
    """All arrays in a ``.pdparams`` file, flattened to dotted names.

    Raises:
        UnsafeFileError: the pickle references anything but numpy array reconstruction.
        FormatError: truncated, not a pickle of arrays, an array whose bytes do not match its shape, or
            dicts nested past reason.
    """
    try:
        with path.open("rb") as f:
            obj = _ArraysOnly(f, path).load()
    except UnsafeFileError as err:
        if str(path) not in str(err):
            raise UnsafeFileError(f"{path}: {err}") from err
        raise
    except FormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, OverflowError, RecursionError) as err:
        raise FormatError(f"{path}: not a readable .pdparams file, or truncated "
                          f"({type(err).__name__}: {str(err)[:200]})") from err
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a state dict of arrays, got {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}

    def walk(d: dict[object, object], prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise FormatError(f"{path}: dicts nested more than {_MAX_DEPTH} deep; not a state dict")
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.", depth + 1)
            elif isinstance(v, _Array):
                if v.array is None:
                    raise UnsafeFileError(f"{path}: array {prefix}{k} has no data in the file; refused")
                out[f"{prefix}{k}"] = v.array
            elif isinstance(v, np.ndarray):
                out[f"{prefix}{k}"] = v
    walk(obj, "", 0)
    return out
