"""The two backends of the search engine: numpy on the CPU, torch on a CUDA device.

Both expose the same few operations (rows of a chunk, its norms, a product, a partial top k, ...), so the
engine in :mod:`core.search._engine` is written once. Neither copies rows per call: the numpy backend
reads the matrix (views when it is float32), the torch backend the device copy its :class:`SearchIndex`
keeps.
"""

from __future__ import annotations

import ctypes.util
import math
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ParameterError

if TYPE_CHECKING:
    from core.search.index import SearchIndex

#: Environment variable that forces the device ("cpu" or "cuda"); "auto" by default.
DEVICE_ENV = "EMBEDSCOPE_DEVICE"


def cuda_available() -> bool:
    """True when torch can use a CUDA device; never imports torch on a machine without a CUDA driver.

    Looking for the driver library costs more than a neighbour query: a :class:`SearchIndex` asks once.
    """
    if "torch" not in sys.modules and ctypes.util.find_library("cuda") is None:
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto", has_cuda: bool | None = None) -> str:
    """``"cuda"`` or ``"cpu"`` for a requested device ("auto" honours $EMBEDSCOPE_DEVICE, then CUDA).

    Args:
        device: "auto", "cpu" or "cuda".
        has_cuda: whether CUDA is there, when the caller knows; asked of the system otherwise.

    Raises:
        ParameterError: an unknown device, or "cuda" where there is none.
    """
    if device == "auto":
        device = os.environ.get(DEVICE_ENV, "auto") or "auto"
        if device == "auto":
            return "cuda" if (cuda_available() if has_cuda is None else has_cuda) else "cpu"
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda" and not (cuda_available() if has_cuda is None else has_cuda):
        raise ParameterError("device 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    return device


class NumpyOps:
    """The CPU backend: numpy, rows read straight from the matrix (views when they are float32)."""

    inf = np.inf

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self.vectors = index.matrix.vectors
        self.safe_norms = index.safe_norms
        self.sq_norms = index.sq_norms

    def rows(self, start: int, end: int) -> np.ndarray:
        return np.asarray(self.vectors[start:end], dtype=np.float32)

    def norms(self, start: int, end: int) -> np.ndarray:
        return self.safe_norms[start:end]

    def sqnorms(self, start: int, end: int) -> np.ndarray:
        return self.sq_norms[start:end]

    @staticmethod
    def put(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    @staticmethod
    def ints(a: np.ndarray) -> np.ndarray:
        return a

    @staticmethod
    def matmul(q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return q @ rows.T

    @staticmethod
    def topk(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return topk_numpy(s, k)

    @staticmethod
    def gather(f: np.ndarray, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.take(f, idx, axis=0, out=out)

    @staticmethod
    def empty_like(a: np.ndarray) -> np.ndarray:
        return np.empty_like(a)

    @staticmethod
    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a, b], axis=1)

    @staticmethod
    def take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, idx, axis=1)

    @staticmethod
    def full(shape: tuple[int, int], value: float, ints: bool = False) -> np.ndarray:
        return np.full(shape, value, dtype=np.int64 if ints else np.float32)

    @staticmethod
    def fix_nan(s: np.ndarray) -> np.ndarray:
        s[np.isnan(s)] = -np.inf
        return s

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return np.asarray(a)


def topk_numpy(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest values of each row and their columns, unordered.

    ``np.argpartition`` costs several ns per value. Here the k-th largest of the maxima of short
    segments bounds the answer from below (k segments reach it), so only the values of the few segments
    that reach it are looked at. Floods of ties or -inf fall back to ``np.argpartition``.
    """
    b, c = s.shape
    if k >= c:
        return s, np.ascontiguousarray(np.broadcast_to(np.arange(c), s.shape))
    seg_len = min(256, c // (8 * k))
    if seg_len >= 16:
        n_full = c // seg_len
        full = n_full * seg_len
        segs = s[:, :full].reshape(b, n_full, seg_len)
        seg = segs.max(axis=2)
        tail = c - full
        if tail:
            seg = np.concatenate([seg, s[:, full:].max(axis=1, keepdims=True)], axis=1)
        tau = np.partition(seg, seg.shape[1] - k, axis=1)[:, seg.shape[1] - k]
        r, g = np.nonzero(seg[:, :n_full] >= tau[:, None])
        if r.size <= max(4 * k * b, 64) and np.isfinite(tau).all():
            vals = segs[r, g].ravel()
            rows = np.repeat(r, seg_len)
            cols = (g[:, None] * seg_len + np.arange(seg_len)[None, :]).ravel()
            if tail:
                vals = np.concatenate([vals, s[:, full:].ravel()])
                rows = np.concatenate([rows, np.repeat(np.arange(b), tail)])
                cols = np.concatenate([cols, np.tile(np.arange(full, c), b)])
            keep = vals >= tau[rows]
            vals, rows, cols = vals[keep], rows[keep], cols[keep]
            order = np.lexsort((-vals, rows))
            rows, cols, vals = rows[order], cols[order], vals[order]
            take = np.searchsorted(rows, np.arange(b))[:, None] + np.arange(k)[None, :]
            return vals[take], cols[take]
    idx = np.argpartition(s, c - k, axis=1)[:, c - k:]
    return np.take_along_axis(s, idx, axis=1), idx


class TorchOps:
    """The torch backend (CUDA): the matrix is copied to the device once, by its index, and reused."""

    inf = math.inf

    def __init__(self, index: SearchIndex, device: str = "cuda") -> None:
        import torch

        self.torch = torch
        self.dev = torch.device(device)
        self.vectors = index.matrix.vectors
        self.all_rows, self.safe_norms, self.sq_norms = index.device_copy(device)

    def rows(self, start: int, end: int) -> Any:
        if self.all_rows is not None:
            return self.all_rows[start:end]
        # Too large for the device: stream the chunk from host memory.
        return self.put(np.asarray(self.vectors[start:end]))

    def norms(self, start: int, end: int) -> Any:
        return self.safe_norms[start:end]

    def sqnorms(self, start: int, end: int) -> Any:
        return self.sq_norms[start:end]

    def put(self, a: np.ndarray) -> Any:
        # A copy: torch refuses read-only numpy memory, and our arrays are read-only.
        return self.torch.from_numpy(np.array(a, dtype=np.float32, order="C")).to(self.dev)

    def ints(self, a: np.ndarray) -> Any:
        return self.torch.from_numpy(np.array(a, dtype=np.int64, order="C")).to(self.dev)

    def matmul(self, q: Any, rows: Any) -> Any:
        # Full float32 products even where another module allowed TF32 (scores must match gensim's).
        prev = self.torch.get_float32_matmul_precision()
        if prev == "highest":
            return q @ rows.T
        self.torch.set_float32_matmul_precision("highest")
        try:
            return q @ rows.T
        finally:
            self.torch.set_float32_matmul_precision(prev)

    def topk(self, s: Any, k: int) -> tuple[Any, Any]:
        vals, idx = self.torch.topk(s, min(k, s.shape[1]), dim=1, largest=True, sorted=False)
        return vals, idx

    def gather(self, f: Any, idx: Any, out: Any = None) -> Any:
        return self.torch.index_select(f, 0, idx, out=out) if out is not None else f[idx]

    def empty_like(self, a: Any) -> Any:
        return self.torch.empty_like(a)

    def cat(self, a: Any, b: Any) -> Any:
        return self.torch.cat([a, b], dim=1)

    def take(self, a: Any, idx: Any) -> Any:
        return self.torch.gather(a, 1, idx)

    def full(self, shape: tuple[int, int], value: float, ints: bool = False) -> Any:
        dtype = self.torch.int64 if ints else self.torch.float32
        return self.torch.full(shape, value, dtype=dtype, device=self.dev)

    def fix_nan(self, s: Any) -> Any:
        return self.torch.nan_to_num(s, nan=-math.inf, posinf=math.inf, neginf=-math.inf)

    @staticmethod
    def numpy(a: Any) -> np.ndarray:
        return np.asarray(a.detach().cpu().numpy())


Ops = NumpyOps | TorchOps
