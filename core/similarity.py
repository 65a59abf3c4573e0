"""Nearest neighbours, analogies and similarity tables: one search engine that everything uses.

Scores follow gensim's definitions so numbers can be quoted next to published ones: ``neighbors`` with
cosine is ``KeyedVectors.most_similar``, ``analogy(method="add")`` is ``most_similar(positive, negative)``
(3CosAdd), ``analogy(method="mul")`` is ``most_similar_cosmul`` (3CosMul) and :func:`doesnt_match` is
``doesnt_match``.

    >>> import core
    >>> from core import similarity
    >>> m = core.load("demo")
    >>> [n.token for n in similarity.neighbors(m, "king", k=3).neighbors]
    ['kings', 'queen', 'monarch']
    >>> similarity.neighbors(m, "king - man + woman", k=1).neighbors[0].token
    'queen'
    >>> ids, scores = similarity.knn(m, m.vectors[:100], k=10, exclude=range(100))  # batched
    >>> ids, scores = similarity.knn_rows(m, k=10)  # every row's neighbours, itself left out

One engine, ``_scan``, answers every search: :func:`knn` (query vectors), :func:`knn_of_sums` (queries
that are weighted sums of a few shared vectors, e.g. thousands of analogy questions) and
:func:`cosmul_knn` (3CosMul). It does one matrix product per chunk of the vocabulary and block of queries
(so memory stays bounded on 128k-row matrices), keeps the top ``k`` of each chunk by a partial sort and
merges them into a running best. It runs on the GPU through torch when CUDA is there, else on the CPU with
numpy, where batches keep their best rows through the compiled loops of :mod:`core._kernels` (one thread per
core). Rows are never copied per call: cosine divides the products by the matrix's cached norms.

A single cosine query on the CPU reads the whole matrix, so from the second one on a matrix it goes through
the int8 first pass of :mod:`core._int8_index` (a quarter of the bytes, with a proven error bound), and only
the rows that bound leaves in doubt are scored in float32: the same answer, faster.
"""

from __future__ import annotations

import ctypes.util
import functools
import itertools
import math
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from core import _int8_index
from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.tokens import Piece

if TYPE_CHECKING:
    import pandas as pd

#: Neighbour metrics: cosine and dot (larger is closer), euclidean (smaller is closer).
METRICS: tuple[str, ...] = ("cosine", "euclidean", "dot")
#: Analogy methods: "add" = 3CosAdd (gensim most_similar), "mul" = 3CosMul (most_similar_cosmul).
METHODS: tuple[str, ...] = ("add", "mul")

#: Values in one block × chunk score matrix (64 MiB of float32): bounds memory on any vocabulary size.
_SCORE_ELEMS = 1 << 24
#: Queries scored together against one chunk of the vocabulary.
_BLOCK_ROWS = 2048
#: Added to the 3CosMul denominator, as gensim does, so a zero similarity cannot divide by zero.
_COSMUL_EPS = 1e-6
#: Environment variable that forces the device ("cpu" or "cuda"); "auto" by default.
DEVICE_ENV = "EMBEDSCOPE_DEVICE"


# ================================================================================================
# Candidate filters
# ================================================================================================
@dataclass(frozen=True)
class Filters:
    """Which rows may be returned as neighbours.

    Attributes:
        hide_special: leave out special tokens ([CLS], <s>, ...) and unassigned padding rows.
        hide_subwords: leave out word-continuation pieces (``##ing``, pieces without ``Ġ``/``▁``).
        hide_numbers: leave out numbers.
        first_n: search only the first N rows (the frequency order of word2vec files; gensim's
            ``restrict_vocab``).
    """

    hide_special: bool = False
    hide_subwords: bool = False
    hide_numbers: bool = False
    first_n: int | None = None

    def hidden_kinds(self) -> frozenset[str]:
        kinds: set[str] = set()
        if self.hide_special:
            kinds |= {"special", "unassigned"}
        if self.hide_subwords:
            kinds.add("subword")
        if self.hide_numbers:
            kinds.add("number")
        return frozenset(kinds)


_MASKS: weakref.WeakKeyDictionary[EmbeddingMatrix, dict[frozenset[str], np.ndarray]] = (
    weakref.WeakKeyDictionary())


def candidate_mask(m: EmbeddingMatrix, filters: Filters | None) -> np.ndarray | None:
    """Boolean row mask (True = may be returned) for the kind filters, or None when nothing is hidden.

    Cached per matrix and filter combination; read-only.
    """
    hidden = filters.hidden_kinds() if filters else frozenset()
    if not hidden:
        return None
    per_matrix = _MASKS.setdefault(m, {})
    mask = per_matrix.get(hidden)
    if mask is None:
        kinds = np.asarray(m.kinds)
        mask = ~np.isin(kinds, sorted(hidden))
        mask.setflags(write=False)
        per_matrix[hidden] = mask
    return mask


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ParameterError(f"{name} must be a whole number; got {k!r}")
    if k < 1:
        raise ParameterError(f"{name} must be at least 1; got {k}")
    return int(k)


def _check_restrict(m: EmbeddingMatrix, restrict: int | None) -> int:
    if restrict is None:
        return len(m)
    if isinstance(restrict, bool) or not isinstance(restrict, (int, np.integer)) or restrict < 1:
        raise ParameterError(f"restrict (first N rows) must be a whole number of at least 1; got {restrict!r}")
    return min(int(restrict), len(m))


# ================================================================================================
# Devices and the two backends of the engine
# ================================================================================================
@functools.lru_cache(maxsize=1)
def _cuda_available() -> bool:
    """True when torch can use a CUDA device; never imports torch on a machine without a CUDA driver.

    Asked once per process: looking for the driver library is slower than a neighbour query.
    """
    if "torch" not in sys.modules and ctypes.util.find_library("cuda") is None:
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` or ``"cpu"`` for a requested device ("auto" honours $EMBEDSCOPE_DEVICE, then CUDA).

    Raises:
        ParameterError: an unknown device, or "cuda" where there is none.
    """
    if device == "auto":
        device = os.environ.get(DEVICE_ENV, "auto") or "auto"
        if device == "auto":
            return "cuda" if _cuda_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'auto', 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda" and not _cuda_available():
        raise ParameterError("device 'cuda' was asked for but torch sees no CUDA device; use 'auto' or 'cpu'")
    return device


#: Per matrix: norms with zeros made +inf (for cosine) and squared norms (for euclidean).
_HOST_NORMS: weakref.WeakKeyDictionary[EmbeddingMatrix, tuple[np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary())


class _NumpyOps:
    """The CPU backend: numpy, rows read straight from the matrix (views when they are float32)."""

    inf = np.inf

    def __init__(self, m: EmbeddingMatrix) -> None:
        self.m = m
        cached = _HOST_NORMS.get(m)
        if cached is None:
            norms = m.norms
            # A zero row has cosine 0 with everything: dividing by +inf gives exactly that.
            cached = (np.where(norms > 0, norms, np.float32(np.inf)).astype(np.float32),
                      np.square(norms, dtype=np.float32))
            for a in cached:
                a.setflags(write=False)
            _HOST_NORMS[m] = cached
        self.safe_norms, self.sq_norms = cached

    def rows(self, start: int, end: int) -> np.ndarray:
        return np.asarray(self.m.vectors[start:end], dtype=np.float32)

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
        return _topk_numpy(s, k)

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


def _topk_numpy(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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


#: The matrix on the device, once per matrix and device (float32, with its norms); dropped with the matrix.
_DEVICE_ROWS: weakref.WeakKeyDictionary[EmbeddingMatrix, dict[str, Any]] = weakref.WeakKeyDictionary()


class _TorchOps:
    """The torch backend (CUDA): the matrix is copied to the device once and reused by every call."""

    inf = math.inf

    def __init__(self, m: EmbeddingMatrix, device: str = "cuda") -> None:
        import torch

        self.torch = torch
        self.dev = torch.device(device)
        per_device = _DEVICE_ROWS.setdefault(m, {})
        cached = per_device.get(device)
        if cached is None:
            rows = None
            free = torch.cuda.mem_get_info()[0] if self.dev.type == "cuda" else 0
            if self.dev.type != "cuda" or len(m) * m.dim * 4 < 0.6 * free:
                rows = torch.empty((len(m), m.dim), dtype=torch.float32, device=self.dev)
                step = max(1, (1 << 24) // max(1, m.dim))
                for s in range(0, len(m), step):
                    rows[s:s + step].copy_(torch.from_numpy(np.array(m.vectors[s:s + step], dtype=np.float32)))
            norms = torch.from_numpy(np.array(m.norms, dtype=np.float32)).to(self.dev)
            cached = (rows, torch.where(norms > 0, norms, torch.full_like(norms, math.inf)), norms * norms)
            per_device[device] = cached
        self.m = m
        self.all_rows: Any = cached[0]
        self.safe_norms: Any = cached[1]
        self.sq_norms: Any = cached[2]

    def rows(self, start: int, end: int) -> Any:
        if self.all_rows is not None:
            return self.all_rows[start:end]
        # Too large for the GPU: stream the chunk from host memory.
        return self.put(np.asarray(self.m.vectors[start:end]))

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


_NONFINITE: weakref.WeakKeyDictionary[EmbeddingMatrix, bool] = weakref.WeakKeyDictionary()


def _has_nonfinite(m: EmbeddingMatrix) -> bool:
    """Whether some row holds NaN/Inf (its norm is not finite); such scores are then made -inf."""
    flag = _NONFINITE.get(m)
    if flag is None:
        flag = _NONFINITE[m] = not bool(np.isfinite(m.norms).all())
    return flag


def _ops(m: EmbeddingMatrix, device: str) -> _NumpyOps | _TorchOps:
    return _TorchOps(m) if resolve_device(device) == "cuda" else _NumpyOps(m)


# ================================================================================================
# The engine
# ================================================================================================
def _as_matrix(queries: Any, dim: int, name: str = "queries") -> np.ndarray:
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ParameterError(f"{name} must be vectors of {dim} values (shape n×{dim}); got shape {q.shape}")
    if not np.issubdtype(q.dtype, np.number):
        raise ParameterError(f"{name} must hold numbers; got {q.dtype}")
    if q.shape[0] == 0:
        raise ParameterError(f"{name} is empty; give at least one query vector")
    return q


def _exclusions(exclude: Any, n_out: int) -> np.ndarray | None:
    """Per-query excluded row ids as an (n_out × e) int array padded with -1, or None."""
    if exclude is None:
        return None
    if isinstance(exclude, np.ndarray) and exclude.dtype != object:
        e = exclude.astype(np.int64, copy=False)
        if e.ndim == 1:
            e = e[:, None]
    else:
        seqs = [np.atleast_1d(np.asarray(x, dtype=np.int64)) for x in exclude]
        width = max((s.size for s in seqs), default=0)
        e = np.full((len(seqs), max(width, 1)), -1, dtype=np.int64)
        for i, s in enumerate(seqs):
            e[i, :s.size] = s
    if e.ndim != 2 or e.shape[0] != n_out:
        raise ParameterError(f"exclude must give one list of row ids per query ({n_out}); got {e.shape[0]}")
    return e


def _terms(terms: Any, n_basis: int, name: str) -> np.ndarray:
    t = np.asarray(terms)
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2 or t.shape[0] == 0 or not np.issubdtype(t.dtype, np.integer):
        raise ParameterError(f"{name} must be an (n_queries × terms) array of basis row numbers; got {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= n_basis):
        raise ParameterError(f"{name} must hold basis row numbers from 0 to {n_basis - 1}")
    return t.astype(np.int64, copy=False)


@dataclass
class _Plan:
    """What one scan multiplies with the matrix, and how the products become scores.

    With ``terms`` None, output i is scored against ``basis[i]`` (after ``prepare``, per block, so a
    caller's large query array is never copied whole). Otherwise the basis is small and shared: its
    products with a chunk are computed once, and output i combines rows ``terms[i]`` of them: a weighted
    sum ("cosine", "dot", "euclidean") or the 3CosMul ratio ("cosmul", first ``n_pos`` terms positive).
    """

    basis: np.ndarray
    mode: str
    terms: np.ndarray | None = None
    weights: np.ndarray | None = None
    n_pos: int = 0
    prepare: Callable[[np.ndarray], np.ndarray] | None = None
    qnorms: np.ndarray | None = None

    @property
    def n_out(self) -> int:
        return self.basis.shape[0] if self.terms is None else self.terms.shape[0]

    @cached_property
    def signs(self) -> list[float]:
        """Per term column: 1.0 or -1.0 when every weight of the column is that, else 0.0 (general)."""
        if self.weights is None:
            return [1.0] * (0 if self.terms is None else self.terms.shape[1])
        out = []
        for j in range(self.weights.shape[1]):
            col = self.weights[:, j]
            out.append(1.0 if (col == 1.0).all() else -1.0 if (col == -1.0).all() else 0.0)
        return out


def _scan(m: EmbeddingMatrix, plan: _Plan, k: int, exclude: np.ndarray | None, restrict: int | None,
          mask: np.ndarray | None, device: str, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows by score for every output of ``plan``: the loop behind every search.

    One matrix product per chunk of the vocabulary (and block of queries); the top ``k`` of each chunk
    by a partial sort, merged into a running best. Returns numpy (ids, scores), each row best first
    (ties to the lower id); -1 / -inf where fewer than ``k`` rows could be returned.
    """
    n_scan = _check_restrict(m, restrict)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(m),):
            raise ParameterError(f"mask must have one entry per row ({len(m)}); got shape {mask.shape}")
        n_cand = int(np.count_nonzero(mask[:n_scan]))
    else:
        n_cand = n_scan
    if k > n_cand:
        where = "rows" if n_cand == len(m) else "candidate rows left by restrict and the filters"
        raise ParameterError(f"k must be at most the {n_cand:,} {where}; got {k:,}")
    blocked = None if mask is None else ~mask[:n_scan]
    if plan.terms is not None and not np.isfinite(plan.basis).all():
        raise ParameterError(f"{what}: a query vector has NaN or infinite values")
    check_nan = _has_nonfinite(m)
    found = None
    if (plan.terms is None and plan.mode == "cosine" and plan.n_out <= _int8_index.MAX_QUERIES and not check_nan
            and resolve_device(device) == "cpu"):
        found = _scan_first_pass(m, plan, k, exclude, n_scan, blocked, report, what)
    if found is None:
        found = _scan_all(m, plan, k, exclude, n_scan, blocked, check_nan, device, report, what)
    vals_np, ids_np = found
    if plan.qnorms is not None:
        # A positive factor per query does not change its ranking, so it is applied to the winners only.
        vals_np /= np.where(plan.qnorms > 0, plan.qnorms, np.inf).astype(np.float32)[:, None]
    ids_np[np.isneginf(vals_np)] = -1
    order = np.lexsort((np.where(ids_np < 0, np.iinfo(np.int64).max, ids_np), -vals_np), axis=1)
    report(1.0, what)
    return np.take_along_axis(ids_np, order, axis=1), np.take_along_axis(vals_np, order, axis=1)


def _chunk_rows(n_scan: int, width: int, dim: int) -> int:
    """Matrix rows per chunk: a (width × chunk) score block stays within ``_SCORE_ELEMS`` values, and the rows
    read per chunk within 64 MiB."""
    return max(1, min(n_scan, _SCORE_ELEMS // width, max(1024, (1 << 26) // max(1, dim))))


def _prepared(plan: _Plan, b0: int, b1: int, what: str) -> np.ndarray:
    """Queries ``b0:b1`` of a plan as the engine multiplies them (e.g. unit length for cosine)."""
    q = plan.prepare(np.asarray(plan.basis[b0:b1])) if plan.prepare else plan.basis[b0:b1]
    if not np.isfinite(q).all():
        raise ParameterError(f"{what}: a query vector has NaN or infinite values")
    return q


def _scan_first_pass(m: EmbeddingMatrix, plan: _Plan, k: int, exclude: np.ndarray | None, n_scan: int,
                     blocked: np.ndarray | None, report: Reporter,
                     what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Cosine top ``k`` of a few queries through the int8 first pass (:mod:`core._int8_index`): exact
    float32 scores of the rows it leaves in doubt. None where there is no index or too many rows are in doubt.
    """
    index = _int8_index.for_matrix(m)
    if index is None:
        return None
    report(0.0, what)
    q = np.asarray(_prepared(plan, 0, plan.n_out, what), dtype=np.float32)
    doubt = index.candidates(q, k, n_scan, blocked, exclude)
    if doubt is None:
        return None
    norms = _NumpyOps(m).safe_norms
    vals = np.full((len(doubt), k), -np.inf, dtype=np.float32)
    ids = np.full((len(doubt), k), -1, dtype=np.int64)
    for b, rows in enumerate(doubt):
        # einsum, not BLAS: a few rows, and a BLAS call here would wake its threads against torch's.
        s = np.einsum("ij,j->i", np.asarray(m.vectors[rows], dtype=np.float32), q[b]) / norms[rows]
        top = np.argpartition(s, s.size - k)[s.size - k:]
        vals[b], ids[b] = s[top], rows[top]
    return vals, ids


def _scan_all(m: EmbeddingMatrix, plan: _Plan, k: int, exclude: np.ndarray | None, n_scan: int,
              blocked: np.ndarray | None, check_nan: bool, device: str, report: Reporter,
              what: str) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (unordered) of every output of ``plan`` by one pass over the first ``n_scan`` rows."""
    ops: Any = _ops(m, device)
    n_out = plan.n_out
    shared = plan.terms is not None
    # The compiled loops pay numba's import (~0.3 s) once per process: worth it for batches, not one query.
    if isinstance(ops, _NumpyOps) and (shared or n_out >= _COMPILED_MIN_QUERIES) and k <= _compiled_max_k():
        return _scan_compiled(ops, plan, k, exclude, n_scan, blocked, report, what)
    block = max(1, min(n_out, _BLOCK_ROWS))
    width = max(block, plan.basis.shape[0]) if shared else block
    chunk = _chunk_rows(n_scan, width, m.dim)
    n_blocks, n_chunks = -(-n_out // block), -(-n_scan // chunk)

    basis: Any = None
    terms: Any = None
    weights: Any = None
    if shared:
        basis = ops.put(plan.basis)
        terms = ops.ints(plan.terms)
        if plan.weights is not None:
            weights = ops.put(plan.weights)

    best_s = ops.full((n_out, k), -ops.inf)
    best_i = ops.full((n_out, k), -1, ints=True)
    step = 0
    for c0 in range(0, n_scan, chunk):
        c1 = min(n_scan, c0 + chunk)
        rows = ops.rows(c0, c1)
        cols = np.flatnonzero(blocked[c0:c1]) if blocked is not None else np.empty(0, dtype=np.int64)
        cols_dev = ops.ints(cols) if cols.size else None
        if shared:
            f = _basis_products(ops, plan, basis, rows, c0, c1)
        for b0 in range(0, n_out, block):
            report(step / (n_blocks * n_chunks), what)
            step += 1
            b1 = min(n_out, b0 + block)
            if shared:
                s = _combine(ops, plan, f, terms[b0:b1], None if weights is None else weights[b0:b1])
                if plan.mode == "euclidean":
                    s *= 2.0
                    s -= ops.sqnorms(c0, c1)[None, :]
            else:
                s = _query_scores(ops, plan, rows, b0, b1, c0, c1, what)
            if check_nan:
                s = ops.fix_nan(s)
            if cols_dev is not None:
                s[:, cols_dev] = -ops.inf
            if exclude is not None:
                ex = exclude[b0:b1]
                qi, ej = np.nonzero((ex >= c0) & (ex < c1))
                if qi.size:
                    s[ops.ints(qi), ops.ints(ex[qi, ej] - c0)] = -ops.inf
            vals, idx = ops.topk(s, k)
            if n_chunks == 1 and vals.shape[1] == k:
                best_s[b0:b1], best_i[b0:b1] = vals, idx + c0
            else:
                all_s, all_i = ops.cat(best_s[b0:b1], vals), ops.cat(best_i[b0:b1], idx + c0)
                top_s, sel = ops.topk(all_s, k)
                best_s[b0:b1], best_i[b0:b1] = top_s, ops.take(all_i, sel)
    return ops.numpy(best_s).astype(np.float32), ops.numpy(best_i).astype(np.int64)


@functools.lru_cache(maxsize=1)
def _compiled_max_k() -> int:
    """The largest ``k`` the compiled loops take (0 where numba cannot be imported)."""
    try:
        from core import _kernels
    except (ImportError, OSError, RuntimeError):  # pragma: no cover - numba missing, or no cache it can write
        return 0
    return _kernels.MAX_K


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _on_threads(n: int, run: Callable[[int, int], None], min_per_thread: int = 32) -> None:
    """``run(a, b)`` over contiguous slices of range(n), on one thread per core (the loops release the GIL)."""
    global _POOL
    workers = max(1, min(os.cpu_count() or 1, n // max(1, min_per_thread)))
    if workers == 1:
        run(0, n)
        return
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="embedscope-search")
    bounds = np.linspace(0, n, workers + 1).astype(int)
    for fut in [_POOL.submit(run, int(a), int(b)) for a, b in itertools.pairwise(bounds)]:
        fut.result()


#: Fewer queries than this (and no shared basis) are answered by numpy alone.
_COMPILED_MIN_QUERIES = 16
#: Columns per chunk of the compiled scan: a query's few basis rows of a chunk stay in the core's cache.
_COMPILED_CHUNK = 4096


def _scan_compiled(ops: _NumpyOps, plan: _Plan, k: int, exclude: np.ndarray | None, n_scan: int,
                   blocked: np.ndarray | None, report: Reporter, what: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_scan_all` on the CPU with the compiled loops of :mod:`core._kernels`."""
    from core import _kernels as kn

    m = ops.m
    n_out = plan.n_out
    best_s = np.full((n_out, k), -np.inf, dtype=np.float32)
    best_i = np.full((n_out, k), -1, dtype=np.int64)
    ex = exclude if exclude is not None else np.empty((n_out, 0), dtype=np.int64)
    none_blocked = np.empty(0, dtype=np.bool_)
    no_sq = np.empty(0, dtype=np.float32)
    if plan.terms is not None:
        basis = ops.put(plan.basis)
        terms = np.ascontiguousarray(plan.terms, dtype=np.int64)
        weights = (np.ascontiguousarray(plan.weights, dtype=np.float32) if plan.weights is not None
                   else np.ones(terms.shape, dtype=np.float32))
        mode = {"cosmul": kn.MODE_COSMUL, "euclidean": kn.MODE_EUCLIDEAN}.get(plan.mode, kn.MODE_SUM)
        chunk = _COMPILED_CHUNK
    else:
        chunk = _chunk_rows(n_scan, max(1, min(n_out, _BLOCK_ROWS)), m.dim)
    n_blocks = 1 if plan.terms is not None else -(-n_out // _BLOCK_ROWS)
    steps = n_blocks * -(-n_scan // chunk)
    for ci, c0 in enumerate(range(0, n_scan, chunk)):
        c1 = min(n_scan, c0 + chunk)
        rows = ops.rows(c0, c1)
        blk = np.ascontiguousarray(blocked[c0:c1]) if blocked is not None else none_blocked
        if plan.terms is not None:
            f = _basis_products(ops, plan, basis, rows, c0, c1)
            sq = ops.sqnorms(c0, c1) if plan.mode == "euclidean" else no_sq
            report(ci / steps, what)

            def combine(a: int, b: int, f: np.ndarray = f, sq: np.ndarray = sq, blk: np.ndarray = blk,
                        c0: int = c0) -> None:
                kn.combine_keep_best(f, terms, weights, mode, plan.n_pos, sq, a, b, c0, blk, ex, best_s, best_i)

            _on_threads(n_out, combine)
            continue
        for bi, b0 in enumerate(range(0, n_out, _BLOCK_ROWS)):
            report((ci * n_blocks + bi) / steps, what)
            b1 = min(n_out, b0 + _BLOCK_ROWS)
            s = _query_scores(ops, plan, rows, b0, b1, c0, c1, what)

            def keep(a: int, b: int, s: np.ndarray = s, b0: int = b0, blk: np.ndarray = blk, c0: int = c0) -> None:
                kn.keep_best(s[a:b], b0 + a, c0, blk, ex, best_s, best_i)

            _on_threads(b1 - b0, keep)
    return best_s, best_i


def _basis_products(ops: Any, plan: _Plan, basis: Any, rows: Any, c0: int, c1: int) -> Any:
    """Products of a shared basis with rows c0..c1, as the plan's mode combines them (see :class:`_Plan`)."""
    f = ops.matmul(basis, rows)
    if plan.mode in ("cosine", "cosmul"):
        f /= ops.norms(c0, c1)[None, :]
    if plan.mode == "cosmul":
        f += 1.0
        f *= 0.5
    return f


def _query_scores(ops: Any, plan: _Plan, rows: Any, b0: int, b1: int, c0: int, c1: int, what: str) -> Any:
    """Scores of queries b0..b1 against rows c0..c1 (larger is closer)."""
    s = ops.matmul(ops.put(_prepared(plan, b0, b1, what)), rows)
    if plan.mode == "cosine":
        s /= ops.norms(c0, c1)[None, :]
    elif plan.mode == "euclidean":
        # Ranking by 2·q·x − |x|² is ranking by −|q − x|²; exact distances come later.
        s *= 2.0
        s -= ops.sqnorms(c0, c1)[None, :]
    return s


def _combine(ops: Any, plan: _Plan, f: Any, terms: Any, weights: Any) -> Any:
    """Scores of a block of outputs from the shared basis products ``f`` (see :class:`_Plan`)."""
    t = terms.shape[1]
    s = ops.gather(f, terms[:, 0])
    tmp = ops.empty_like(s) if t > 1 else None
    if plan.mode == "cosmul":
        for j in range(1, plan.n_pos):
            s *= ops.gather(f, terms[:, j], out=tmp)
        if plan.n_pos == t:
            s /= 1.0 + _COSMUL_EPS
            return s
        den = ops.gather(f, terms[:, plan.n_pos])
        for j in range(plan.n_pos + 1, t):
            den *= ops.gather(f, terms[:, j], out=tmp)
        den += _COSMUL_EPS
        s /= den
        return s
    signs = plan.signs
    if signs[0] != 1.0:
        s *= weights[:, 0:1]
    for j in range(1, t):
        part = ops.gather(f, terms[:, j], out=tmp)
        if signs[j] == 1.0:
            s += part
        elif signs[j] == -1.0:
            s -= part
        else:
            part *= weights[:, j:j + 1]
            s += part
    return s


def _unit_rows(q: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length in float64 then stored as float32 (gensim's ``unitvec``); zeros stay."""
    q64 = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q64, axis=1, keepdims=True)
    return (q64 / np.where(n > 0, n, 1.0)).astype(np.float32)


def _float32(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float32)


def _finish(m: EmbeddingMatrix, metric: str, ids: np.ndarray, scores: np.ndarray,
            queries: Callable[[int, int], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean: exact distances for the winners; pads become NaN; arrays read-only."""
    if metric == "euclidean" and queries is not None:
        scores = _exact_distances(m, queries, ids)
        order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), scores), axis=1)
        ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
    scores = scores.astype(np.float32)
    scores[ids < 0] = np.nan
    ids.setflags(write=False)
    scores.setflags(write=False)
    return ids, scores


def _exact_distances(m: EmbeddingMatrix, queries: Callable[[int, int], np.ndarray],
                     ids: np.ndarray) -> np.ndarray:
    """|q − x| for the chosen rows, computed directly (the expanded form loses precision near 0)."""
    out = np.full(ids.shape, np.inf, dtype=np.float64)
    step = max(1, (1 << 22) // max(1, ids.shape[1] * m.dim))
    for s in range(0, ids.shape[0], step):
        sub = ids[s:s + step]
        ok = sub >= 0
        rows = np.asarray(m.vectors[np.where(ok, sub, 0).ravel()], dtype=np.float64).reshape(*sub.shape, m.dim)
        q = np.asarray(queries(s, s + sub.shape[0]), dtype=np.float64)
        out[s:s + step] = np.where(ok, np.linalg.norm(rows - q[:, None, :], axis=2), np.inf)
    return out


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ParameterError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def knn(m: EmbeddingMatrix, queries: Any, k: int = 10, metric: str = "cosine", *, exclude: Any = None,
        restrict: int | None = None, mask: np.ndarray | None = None, device: str = "auto",
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``m`` to each query vector; the one neighbour search of Embedscope.

    Args:
        m: the matrix searched.
        queries: query vectors, shape (n_queries, dim) or (dim,). Rows of ``m.vectors`` are fine: the
            batch is read block by block, never copied whole.
        k: neighbours per query, 1 ≤ k ≤ number of candidate rows.
        metric: "cosine" (largest first; = gensim ``most_similar``), "dot" (largest first) or
            "euclidean" (smallest distance first).
        exclude: rows never returned for a given query: an int array of one id per query (e.g. the
            query's own row), an (n_queries × e) int array padded with -1, or a list of id lists.
        restrict: search only the first N rows (gensim's ``restrict_vocab``).
        mask: boolean array over all rows, True where a row may be returned (see :func:`candidate_mask`).
        device: "auto" (CUDA when torch sees one, else CPU; $EMBEDSCOPE_DEVICE overrides), "cpu", "cuda".
        progress, cancel: see :mod:`core.progress`; reported per block of queries × chunk of rows.

    Returns:
        (ids, scores): read-only arrays of shape (n_queries, k), best first; ties go to the lower id.
        Scores are cosine similarities, dot products, or euclidean distances. Where exclusions leave
        fewer than ``k`` rows, ids are -1 and scores NaN.

    Raises:
        ParameterError: bad k, metric, shapes or restrict. Cancelled: through ``cancel``.
    """
    _check_metric(metric)
    k = _check_k(k)
    q = _as_matrix(queries, m.dim)
    plan = _Plan(q, metric, prepare=_unit_rows if metric == "cosine" else _float32)
    ids, scores = _scan(m, plan, k, _exclusions(exclude, q.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), f"{metric} neighbours")
    return _finish(m, metric, ids, scores, lambda a, b: q[a:b])


def knn_of_sums(m: EmbeddingMatrix, basis: Any, terms: Any, weights: Any, k: int = 10, metric: str = "cosine",
                *, exclude: Any = None, restrict: int | None = None, mask: np.ndarray | None = None,
                device: str = "auto", progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn` for queries that are weighted sums of a few shared vectors (analogies in bulk).

    Query i is ``Σ_j weights[i, j] · basis[terms[i, j]]``. The products of the basis with each chunk of
    the matrix are computed once and combined per query, so 19,544 analogy questions over 905 distinct
    words cost 905 rows of matrix product, not 19,544. For 3CosAdd, pass unit-length basis rows.

    Args:
        basis: (n_basis × dim) vectors.
        terms: (n_queries × t) row numbers into ``basis``.
        weights: (n_queries × t) weights (e.g. +1, +1, -1 for b + c − a).
        k, metric, exclude, restrict, mask, device, progress, cancel: as in :func:`knn`.
    """
    _check_metric(metric)
    k = _check_k(k)
    b = _as_matrix(basis, m.dim, "basis").astype(np.float32, copy=False)
    t = _terms(terms, b.shape[0], "terms")
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim == 1:
        w = w[:, None]
    if w.shape != t.shape:
        raise ParameterError(f"weights must have the shape of terms {t.shape}; got {w.shape}")

    def query(a: int, z: int) -> np.ndarray:
        out = np.zeros((z - a, m.dim), dtype=np.float32)
        for j in range(t.shape[1]):
            out += w[a:z, j:j + 1] * b[t[a:z, j]]
        return out

    qnorms = None
    if metric == "cosine":
        qnorms = np.concatenate([np.linalg.norm(query(a, min(a + 4096, t.shape[0])).astype(np.float64), axis=1)
                                 for a in range(0, t.shape[0], 4096)])
    plan = _Plan(b, metric, terms=t, weights=w, qnorms=qnorms)
    ids, scores = _scan(m, plan, k, _exclusions(exclude, t.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), f"{metric} neighbours of sums")
    return _finish(m, metric, ids, scores, query)


def cosmul_knn(m: EmbeddingMatrix, basis: Any, positive: Any, negative: Any = None, k: int = 10, *,
               exclude: Any = None, restrict: int | None = None, mask: np.ndarray | None = None,
               device: str = "auto", progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """3CosMul (Levy & Goldberg; gensim ``most_similar_cosmul``) for a batch of analogies.

    The score of row x is Π_pos (1 + cos(x, p)) / 2 ÷ (Π_neg (1 + cos(x, n)) / 2 + 1e-6).

    Args:
        basis: (n_basis × dim) term vectors (any length; cosine is taken).
        positive: (n_queries × P) row numbers into ``basis``, P ≥ 1.
        negative: (n_queries × N) row numbers into ``basis``, or None.
        k, exclude, restrict, mask, device, progress, cancel: as in :func:`knn`.

    Returns:
        (ids, scores), read-only, shape (n_queries, k), best first.
    """
    k = _check_k(k)
    b = _unit_rows(_as_matrix(basis, m.dim, "basis"))
    pos = _terms(positive, b.shape[0], "positive")
    neg = None if negative is None else _terms(negative, b.shape[0], "negative")
    if neg is not None and neg.shape[0] != pos.shape[0]:
        raise ParameterError(f"negative must have one row per query ({pos.shape[0]}); got {neg.shape[0]}")
    t = pos if neg is None or neg.shape[1] == 0 else np.concatenate([pos, neg], axis=1)
    plan = _Plan(b, "cosmul", terms=t, n_pos=pos.shape[1])
    ids, scores = _scan(m, plan, k, _exclusions(exclude, t.shape[0]), restrict, mask, device,
                        Reporter(progress, cancel), "3CosMul")
    return _finish(m, "cosmul", ids, scores)


def knn_rows(m: EmbeddingMatrix, ids: Any = None, k: int = 10, metric: str = "cosine", *,
             restrict: int | None = None, mask: np.ndarray | None = None, device: str = "auto",
             progress: ProgressFn | None = None,
             cancel: CancelFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of rows of ``m`` itself (each row's own id excluded); all rows when ``ids`` is None.

    This is what Jaccard@k between two matrices needs: ``knn_rows(a, k=10)`` and ``knn_rows(b, k=10)``.
    """
    if ids is None:
        rows, queries = np.arange(len(m)), m.vectors
    else:
        rows = (np.asarray(ids, dtype=np.int64) if isinstance(ids, np.ndarray)
                else m.get_indices(ids))
        if rows.size and (rows.min() < 0 or rows.max() >= len(m)):
            raise ParameterError(f"ids must be row ids from 0 to {len(m) - 1}")
        queries = m.vectors[rows]
    return knn(m, queries, k, metric, exclude=rows, restrict=restrict, mask=mask, device=device,
               progress=progress, cancel=cancel)


# ================================================================================================
# Queries: tokens, split words and formulas
# ================================================================================================
_OPERATORS = "+-"


def parse_formula(text: str) -> list[tuple[float, str]]:
    """Split a formula such as ``king - man + woman`` into (weight, term) pairs, without ``eval``.

    Grammar: ``[+|-] term ((+|-) term)*`` where a term is a word, a quoted text (``"new york"``) or a
    number followed by ``*`` and a term (``0.5*king``). ``+``/``-`` always act as operators outside
    quotes, so quote texts that contain them.

    Raises:
        ParameterError: bad syntax, naming the character position.
    """
    if not text or not text.strip():
        raise ParameterError("query is empty; type a token, a word or a formula like 'king - man + woman'")

    def fail(problem: str, pos: int) -> ParameterError:
        return ParameterError(f"query {text!r}: {problem} (at character {pos + 1}); write a formula like "
                              "'king - man + woman'")

    lexed: list[tuple[str, str, int]] = []  # (kind, value, position); kind: op, star, word, quoted
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _OPERATORS:
            lexed.append(("op", ch, i))
            i += 1
        elif ch == "*":
            lexed.append(("star", ch, i))
            i += 1
        elif ch in "()[]{}":
            if ch == "[":  # special tokens such as [CLS] are words
                j = text.find("]", i)
                if j > i + 1 and not any(c.isspace() for c in text[i:j]):
                    lexed.append(("word", text[i:j + 1], i))
                    i = j + 1
                    continue
            raise fail("brackets are not supported; write a flat sum of terms", i)
        elif ch in "\"'":
            j = text.find(ch, i + 1)
            if j < 0:
                raise fail(f"the quote {ch} is not closed", i)
            if not text[i + 1:j].strip():
                raise fail("an empty quoted term", i)
            lexed.append(("quoted", text[i + 1:j], i))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "+-*()":
                j += 1
            lexed.append(("word", text[i:j], i))
            i = j

    terms: list[tuple[float, str]] = []
    sign: float | None = None
    prev_term: tuple[str, int] | None = None
    t = 0
    while t < len(lexed):
        kind, value, pos = lexed[t]
        if kind == "op":
            if sign is not None:
                raise fail(f"two operators in a row ({value!r} after another)", pos)
            if prev_term is None and terms:
                raise fail("an operator is missing a term", pos)
            sign = 1.0 if value == "+" else -1.0
            prev_term = None
            t += 1
            continue
        if kind == "star":
            raise fail("'*' must follow a number, as in 0.5*king", pos)
        if prev_term is not None:
            raise fail(f"expected + or - between {prev_term[0]!r} and {value!r}; quote a text of several "
                       f"words, as in \"{prev_term[0]} {value}\"", pos)
        weight = sign if sign is not None else 1.0
        if kind == "word" and t + 1 < len(lexed) and lexed[t + 1][0] == "star":
            try:
                coef = float(value)
            except ValueError:
                raise fail(f"{value!r} before '*' is not a number", pos) from None
            if not math.isfinite(coef) or coef == 0:
                raise fail("a coefficient must be a non-zero finite number", pos)
            if t + 2 >= len(lexed) or lexed[t + 2][0] not in ("word", "quoted"):
                raise fail("'*' must be followed by a term", lexed[t + 1][2])
            weight *= coef
            t += 2
            kind, value, pos = lexed[t]
        terms.append((weight, value))
        prev_term = (value, pos)
        sign = None
        t += 1
    if sign is not None:
        raise fail("the formula ends with an operator", lexed[-1][2])
    if not terms:
        raise fail("there is no term", 0)
    return terms


def looks_like_formula(text: str) -> bool:
    """True when ``text`` uses formula syntax (+, -, *, or quotes)."""
    return any(c in text for c in "+-*\"'")


@dataclass(frozen=True)
class Term:
    """One term of a query: what was typed, its weight, and the rows it stands for.

    Attributes:
        text: the term as typed.
        weight: +1, -1 or the coefficient of the term.
        pieces: the rows; one when the term is a token, several when the tokenizer splits a word.
        vector: the row, or the mean of the pieces' rows (read-only).
    """

    text: str
    weight: float
    pieces: tuple[Piece, ...]
    vector: np.ndarray = field(repr=False, compare=False)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(p.id for p in self.pieces)

    @property
    def single(self) -> bool:
        """True when the term is one row of the matrix."""
        return len(self.pieces) == 1

    def describe(self) -> str:
        """How the term was read, for the UI ("'unbelievably' is not one token: mean of 3 pieces ...")."""
        if self.single:
            tok = self.pieces[0].token
            return f"{self.text!r} is the token {tok!r}" + ("" if tok == self.text else " (as the tokenizer reads it)")
        names = ", ".join(p.token for p in self.pieces)
        return f"{self.text!r} is not one token: its vector is the mean of {len(self.pieces)} pieces ({names})"


@dataclass(frozen=True)
class Query:
    """A parsed query: one term (a token or a split word) or a formula of several weighted terms."""

    text: str
    terms: tuple[Term, ...]

    @property
    def is_formula(self) -> bool:
        return len(self.terms) > 1 or self.terms[0].weight != 1.0

    @property
    def positive(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight > 0)

    @property
    def negative(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight < 0)

    @property
    def exclude(self) -> tuple[int, ...]:
        """Rows left out of the results: every term that is a single token (as gensim does)."""
        return tuple(dict.fromkeys(t.pieces[0].id for t in self.terms if t.single))

    @property
    def averaged(self) -> tuple[Term, ...]:
        """Terms the tokenizer split into several pieces (their vector is the mean of the pieces)."""
        return tuple(t for t in self.terms if not t.single)

    def notes(self) -> list[str]:
        """What the UI should say about how the query was read."""
        out = [t.describe() for t in self.terms if not t.single or t.pieces[0].token != t.text]
        if self.is_formula:
            out.insert(0, "formula: " + " ".join(
                f"{'−' if t.weight < 0 else '+'} {'' if abs(t.weight) == 1 else f'{abs(t.weight):g}×'}{t.text}"
                for t in self.terms).lstrip("+ "))
        return out

    def vector(self, metric: str = "cosine") -> np.ndarray:
        """The query vector: with cosine, gensim's mean of unit vectors; with dot/euclidean, Σ weight·vector."""
        if not self.is_formula:
            return np.asarray(self.terms[0].vector)
        if metric != "cosine":
            out = np.zeros(self.terms[0].vector.shape[0], dtype=np.float64)
            for t in self.terms:
                out += t.weight * np.asarray(t.vector, dtype=np.float64)
            return out.astype(np.float32)
        # gensim: positives then negatives, each unit-normalised, accumulated in float32.
        mean = np.zeros(self.terms[0].vector.shape[0], dtype=np.float32)
        for t in (*self.positive, *self.negative):
            mean += np.float64(t.weight) * _unit(t.vector)
        return mean


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    n = np.float32(np.linalg.norm(v))
    return v / n if n > 0 else v


def resolve_term(m: EmbeddingMatrix, text: str, weight: float = 1.0) -> Term:
    """A term's rows: the token itself when it is in the vocabulary, else the tokenizer's pieces.

    Raises:
        TokenNotFound: the text is not a token and the tokenizer gives an unknown piece (with suggestions).
    """
    idx = m.key_to_index.get(text)
    if idx is not None:
        return Term(text, weight, (Piece(text, idx, 0, len(text)),), m.vectors[idx])
    vec, pieces = m.text_vector(text, strict=True)
    return Term(text, weight, tuple(pieces), vec)


def resolve_query(m: EmbeddingMatrix, text: str) -> Query:
    """Read a query: a token, a word the tokenizer splits, or a formula such as ``king - man + woman``.

    Raises:
        ParameterError: empty query or bad formula syntax.
        TokenNotFound: a term is not in the vocabulary (with suggestions).
    """
    if not isinstance(text, str) or not text.strip():
        raise ParameterError("query is empty; type a token, a word or a formula like 'king - man + woman'")
    raw = text
    text = text.strip()
    if text in m.key_to_index or not looks_like_formula(text):
        return Query(raw, (resolve_term(m, text),))
    terms = [resolve_term(m, t, w) for w, t in parse_formula(text)]
    return Query(raw, tuple(terms))


# ================================================================================================
# Neighbours and analogies
# ================================================================================================
@dataclass(frozen=True)
class Neighbor:
    """One result row."""

    token: str
    id: int
    score: float
    kind: str = ""


@dataclass(frozen=True)
class Neighbors:
    """The answer to one query.

    Attributes:
        query: the parsed query (its notes say how a split word or formula was read).
        metric: "cosine", "euclidean", "dot", or "3cosmul".
        neighbors: best first.
    """

    query: Query
    metric: str
    neighbors: list[Neighbor]

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "euclidean"

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"rank": np.arange(1, len(self.neighbors) + 1),
                             "token": [n.token for n in self.neighbors],
                             "id": [n.id for n in self.neighbors],
                             "kind": [n.kind for n in self.neighbors],
                             "score": [n.score for n in self.neighbors]})

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``neighbors --json`` shape (plus metric and notes)."""
        return {"query": self.query.text, "metric": self.metric, "notes": self.query.notes(),
                "neighbors": [{"token": n.token, "id": n.id, "score": n.score} for n in self.neighbors]}


def _results(m: EmbeddingMatrix, query: Query, metric: str, ids: np.ndarray, scores: np.ndarray) -> Neighbors:
    kinds = m.kinds
    out = [Neighbor(m.index_to_key[i], int(i), float(s), kinds[i]) for i, s in zip(ids, scores, strict=True)
           if i >= 0]
    return Neighbors(query, metric, out)


def _as_query(m: EmbeddingMatrix, query: str | Query) -> Query:
    return query if isinstance(query, Query) else resolve_query(m, query)


def prepare_search(m: EmbeddingMatrix) -> bool:
    """Build now what makes later single queries on ``m`` fast (the int8 first pass), instead of at the
    second query; for a server, on a thread of its own. Returns whether single queries will use it."""
    return _int8_index.prepare(m) is not None


def neighbors(m: EmbeddingMatrix, query: str | Query, k: int = 10, metric: str = "cosine",
              filters: Filters | None = None, device: str = "auto") -> Neighbors:
    """The ``k`` nearest tokens to a query (a token, a split word, or a formula — 3CosAdd with cosine).

    With cosine this is gensim's ``most_similar(positive=..., negative=...)``: single-token terms of the
    query are left out of the results.

    Raises:
        ParameterError: bad k/metric/filters or formula. TokenNotFound: an unknown term.
    """
    return neighbors_many(m, [query], k, metric, filters, device)[0]


def neighbors_many(m: EmbeddingMatrix, queries: Sequence[str | Query], k: int = 10, metric: str = "cosine",
                   filters: Filters | None = None, device: str = "auto", progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> list[Neighbors]:
    """:func:`neighbors` for many queries in one pass over the matrix (one product per chunk)."""
    if not queries:
        raise ParameterError("queries is empty; give at least one query")
    parsed = [_as_query(m, q) for q in queries]
    vecs = np.stack([np.asarray(p.vector(metric), dtype=np.float32) for p in parsed])
    exclude = [list(p.exclude) for p in parsed]
    f = filters or Filters()
    ids, scores = knn(m, vecs, k, metric, exclude=exclude, restrict=f.first_n, mask=candidate_mask(m, f),
                      device=device, progress=progress, cancel=cancel)
    return [_results(m, p, metric, ids[i], scores[i]) for i, p in enumerate(parsed)]


def analogy(m: EmbeddingMatrix, query: str | Query | Sequence[str], negative: Sequence[str] = (), k: int = 10,
            method: str = "add", filters: Filters | None = None, device: str = "auto") -> Neighbors:
    """Solve an analogy: ``analogy(m, "king - man + woman")`` or ``analogy(m, ["king", "woman"], ["man"])``.

    Args:
        method: "add" (3CosAdd = gensim ``most_similar``) or "mul" (3CosMul = ``most_similar_cosmul``).

    Raises:
        ParameterError: bad method, syntax, or 3CosMul with coefficients or without a positive term.
        TokenNotFound: an unknown term.
    """
    if method not in METHODS:
        raise ParameterError(f"method must be 'add' (3CosAdd) or 'mul' (3CosMul); got {method!r}")
    if isinstance(query, (str, Query)):
        if negative:
            raise ParameterError("negative terms go into the formula ('king - man + woman') when query is text")
        q = _as_query(m, query)
    else:
        terms = [resolve_term(m, w, 1.0) for w in query] + [resolve_term(m, w, -1.0) for w in negative]
        if not terms:
            raise ParameterError("analogy needs at least one positive term")
        q = Query(" + ".join(query) + "".join(f" - {w}" for w in negative), tuple(terms))
    if method == "add":
        return neighbors(m, q, k, "cosine", filters, device)
    if any(abs(t.weight) != 1.0 for t in q.terms):
        raise ParameterError("3CosMul takes plain + and - terms; drop the coefficients or use method 'add'")
    if not q.positive:
        raise ParameterError("3CosMul needs at least one positive term")
    f = filters or Filters()
    basis = np.stack([_unit(t.vector) for t in (*q.positive, *q.negative)])
    n_pos = len(q.positive)
    neg_terms = np.arange(n_pos, len(basis))[None, :] if q.negative else None
    ids, scores = cosmul_knn(m, basis, np.arange(n_pos)[None, :], neg_terms, k, exclude=[list(q.exclude)],
                             restrict=f.first_n, mask=candidate_mask(m, f), device=device)
    return _results(m, q, "3cosmul", ids[0], scores[0])


def similarity(m: EmbeddingMatrix, a: str, b: str) -> float:
    """Cosine similarity of two tokens or texts (gensim ``similarity`` for tokens)."""
    va, vb = resolve_term(m, a).vector, resolve_term(m, b).vector
    return float(np.dot(_unit_rows(np.asarray(va)[None])[0].astype(np.float64),
                        _unit_rows(np.asarray(vb)[None])[0].astype(np.float64)))


# ================================================================================================
# Lists: which one doesn't belong, similarity tables
# ================================================================================================
def _resolve_items(m: EmbeddingMatrix, items: Sequence[str]) -> tuple[list[Term], list[TokenNotFound]]:
    if isinstance(items, str):
        raise ParameterError("items must be a list of words or texts, not one string")
    clean = list(dict.fromkeys(s.strip() for s in items if isinstance(s, str) and s.strip()))
    if not clean:
        raise ParameterError("the list of words is empty; give at least two words or texts")
    found: list[Term] = []
    missing: list[TokenNotFound] = []
    for text in clean:
        try:
            found.append(resolve_term(m, text))
        except TokenNotFound as err:
            missing.append(err)
    return found, missing


@dataclass(frozen=True)
class OddOneOut:
    """The answer of :func:`doesnt_match`.

    Attributes:
        odd: the item furthest from the mean of all items.
        ranking: (item, cosine to the mean), most central first.
        missing: items not in the vocabulary, each with suggestions (the rest were still ranked).
        terms: how each item was read.
    """

    odd: str
    ranking: list[tuple[str, float]]
    missing: list[TokenNotFound]
    terms: list[Term]


def doesnt_match(m: EmbeddingMatrix, items: Sequence[str]) -> OddOneOut:
    """Which item doesn't go with the others (gensim ``doesnt_match``: furthest from the mean unit vector).

    Raises:
        ParameterError: fewer than two known items.
    """
    found, missing = _resolve_items(m, items)
    if len(found) < 2:
        lost = "; ".join(str(e) for e in missing)
        raise ParameterError(f"which one doesn't belong needs at least two known words; got {len(found)}"
                             + (f" ({lost})" if lost else ""))
    unit = np.stack([_unit(t.vector) for t in found])
    mean = unit.astype(np.float64).mean(axis=0)
    mean = (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)
    dists = unit @ mean
    ranking = sorted(zip((float(d) for d in dists), (t.text for t in found), strict=True), reverse=True)
    return OddOneOut(ranking[-1][1], [(w, d) for d, w in ranking], missing, found)


@dataclass(frozen=True)
class SimilarityTable:
    """Pairwise cosine similarities of a list of words or texts.

    Attributes:
        labels: the items that were found, in display order.
        matrix: (n × n) cosine similarities, read-only, in the order of ``labels``.
        missing: items not in the vocabulary, each with suggestions.
        terms: how each label was read (token, or mean of pieces), in the order of ``labels``.
        clustered: whether the order comes from hierarchical clustering.
    """

    labels: list[str]
    matrix: np.ndarray
    missing: list[TokenNotFound]
    terms: list[Term]
    clustered: bool = False

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.matrix, index=self.labels, columns=self.labels)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``similarity --json`` shape (plus missing items)."""
        return {"tokens": list(self.labels), "matrix": self.matrix.astype(float).tolist(),
                "missing": [{"token": e.token, "suggestions": e.suggestions, "error": str(e)}
                            for e in self.missing]}


def similarity_matrix(m: EmbeddingMatrix, items: Sequence[str], cluster: bool = False,
                      method: str = "average") -> SimilarityTable:
    """Cosine similarities between items; unknown items are reported in ``missing``, not raised.

    Args:
        items: tokens or texts (a text the tokenizer splits is the mean of its pieces).
        cluster: order the items by hierarchical clustering (scipy, optimal leaf order) on 1 − cosine.
        method: the scipy linkage method ("average", "complete", "single", "weighted").

    Raises:
        ParameterError: an empty list or an unknown linkage method.
    """
    if method not in ("average", "complete", "single", "weighted"):
        raise ParameterError(f"method must be average, complete, single or weighted; got {method!r}")
    found, missing = _resolve_items(m, items)
    if found:
        unit = _unit_rows(np.stack([np.asarray(t.vector, dtype=np.float64) for t in found])).astype(np.float64)
        sim = np.clip(unit @ unit.T, -1.0, 1.0)
    else:
        sim = np.zeros((0, 0))
    order = np.arange(len(found))
    clustered = False
    if cluster and len(found) > 2:
        from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
        from scipy.spatial.distance import squareform

        dist = np.clip(1.0 - sim, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        condensed = squareform((dist + dist.T) / 2.0, checks=False)
        z = linkage(condensed, method=method)
        order = leaves_list(optimal_leaf_ordering(z, condensed))
        clustered = True
    sim = sim[np.ix_(order, order)]
    sim.setflags(write=False)
    terms = [found[i] for i in order]
    return SimilarityTable([t.text for t in terms], sim, missing, terms, clustered)


__all__ = [
    "DEVICE_ENV",
    "METHODS",
    "METRICS",
    "Filters",
    "Neighbor",
    "Neighbors",
    "OddOneOut",
    "Query",
    "SimilarityTable",
    "Term",
    "analogy",
    "candidate_mask",
    "cosmul_knn",
    "doesnt_match",
    "knn",
    "knn_of_sums",
    "knn_rows",
    "looks_like_formula",
    "neighbors",
    "neighbors_many",
    "parse_formula",
    "prepare_search",
    "resolve_device",
    "resolve_query",
    "resolve_term",
    "similarity",
    "similarity_matrix",
]
