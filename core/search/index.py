"""`SearchIndex`: what a search derives from one matrix, computed once and owned by that matrix.

    >>> import core
    >>> m = core.load("demo")
    >>> index = m.search_index              # one per matrix, made at its first search
    >>> index.prepare()                     # attach the int8 first pass (FBGEMM only): exact answers, faster
    True

As gensim's ``KeyedVectors`` owns its norms, the matrix owns its index, and the index owns the norms the
engine divides by, the candidate masks of each filter combination, the copy on a CUDA device and, only
when :meth:`SearchIndex.prepare` attaches it, the int8 first pass. Everything goes when the matrix goes;
nothing is kept per process. The first pass is never built behind a caller's back: a query's answer
does not depend on how many queries ran before it.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from core.search._backends import cuda_available, resolve_device
from core.search._int8 import MIN_ROWS, Int8Index

if TYPE_CHECKING:
    from core.matrix import EmbeddingMatrix


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


class SearchIndex:
    """Norms, masks, device copy and optional int8 first pass of one matrix; reach it as ``m.search_index``.

    Thread-safe: several threads may search one matrix while another runs :meth:`prepare`. Holds its
    matrix weakly, so the matrix (which holds the index) is freed as soon as nothing else holds it.
    """

    def __init__(self, m: EmbeddingMatrix) -> None:
        self._matrix = weakref.ref(m)
        self._lock = threading.Lock()
        self._prepare_lock = threading.Lock()
        self._masks: dict[frozenset[str], np.ndarray] = {}
        self._device: dict[str, tuple[Any, Any, Any]] = {}
        self._first_pass: Int8Index | None = None
        self._tried = False

    @property
    def matrix(self) -> EmbeddingMatrix:
        m = self._matrix()
        if m is None:  # pragma: no cover - the matrix holds its index, so a caller holds the matrix
            raise ReferenceError("the matrix of this search index is gone")
        return m

    def __repr__(self) -> str:
        first = "int8 first pass" if self._first_pass is not None else "float32 scan"
        return f"SearchIndex({self.matrix!r}, {first})"

    # -- derived from the rows, once ---------------------------------------------------------------
    @cached_property
    def safe_norms(self) -> np.ndarray:
        """Row norms with zeros made +inf: a zero row has cosine 0 with everything (read-only float32)."""
        norms = self.matrix.norms
        out = np.where(norms > 0, norms, np.float32(np.inf)).astype(np.float32)
        out.setflags(write=False)
        return out

    @cached_property
    def sq_norms(self) -> np.ndarray:
        """Squared row norms, for euclidean ranking (read-only float32)."""
        out = np.square(self.matrix.norms, dtype=np.float32)
        out.setflags(write=False)
        return out

    @cached_property
    def has_nonfinite(self) -> bool:
        """Whether some row holds NaN/Inf (its norm is not finite); the engine then makes such scores -inf."""
        return not bool(np.isfinite(self.matrix.norms).all())

    @cached_property
    def has_cuda(self) -> bool:
        """Whether torch sees a CUDA device (asked once per index: the probe costs more than a query)."""
        return cuda_available()

    def device(self, requested: str = "auto") -> str:
        """``"cuda"`` or ``"cpu"`` for a requested device (see :func:`core.search.resolve_device`)."""
        return resolve_device(requested, self.has_cuda if requested != "cpu" else False)

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        """Boolean row mask (True = may be returned) for the kind filters, or None when nothing is hidden.

        One read-only array per filter combination, kept as long as the matrix.
        """
        hidden = filters.hidden_kinds() if filters else frozenset()
        if not hidden:
            return None
        mask = self._masks.get(hidden)
        if mask is None:
            mask = ~np.isin(np.asarray(self.matrix.kinds), sorted(hidden))
            mask.setflags(write=False)
            with self._lock:
                mask = self._masks.setdefault(hidden, mask)
        return mask

    def device_copy(self, device: str) -> tuple[Any, Any, Any]:
        """(rows or None, safe norms, squared norms) as float32 torch tensors on ``device``, copied once.

        Rows are None where the matrix would take more than 60% of the device's free memory: the engine
        then streams chunks from host memory.
        """
        with self._lock:
            cached = self._device.get(device)
            if cached is None:
                cached = self._device[device] = self._copy_to(device)
            return cached

    def _copy_to(self, device: str) -> tuple[Any, Any, Any]:
        import torch

        m = self.matrix
        dev = torch.device(device)
        rows = None
        free = torch.cuda.mem_get_info()[0] if dev.type == "cuda" else 0
        if dev.type != "cuda" or len(m) * m.dim * 4 < 0.6 * free:
            rows = torch.empty((len(m), m.dim), dtype=torch.float32, device=dev)
            step = max(1, (1 << 24) // max(1, m.dim))
            for s in range(0, len(m), step):
                rows[s:s + step].copy_(torch.from_numpy(np.array(m.vectors[s:s + step], dtype=np.float32)))
        norms = torch.from_numpy(np.array(m.norms, dtype=np.float32)).to(dev)
        return rows, torch.where(norms > 0, norms, torch.full_like(norms, math.inf)), norms * norms

    # -- the int8 first pass, attached only on request -----------------------------------------
    @property
    def first_pass(self) -> Int8Index | None:
        """The int8 first pass single cosine queries on the CPU go through, once :meth:`prepare` attached it."""
        return self._first_pass

    def prepare(self) -> bool:
        """Attach the int8 first pass: single cosine queries on the CPU then read a quarter of the bytes.

        The answers stay exactly those of the float32 scan (every approximate score carries a proven error
        bound, and the rows it leaves in doubt are scored exactly). Costs a quarter of the matrix's float32
        bytes and about a second per 3·10⁷ values, plus torch's import the first time: a server runs it on
        a thread of its own, and queries scan in float32 meanwhile (they never wait for it). Idempotent.

        Returns:
            Whether single queries now use it: False for matrices under 4,096 rows (the scan is as fast),
            where torch's int8 engine is not FBGEMM (x86), where the kernel does not keep its bound on this
            matrix, or where the matrix holds NaN/Inf.
        """
        if self._first_pass is not None:
            return True
        m = self.matrix
        if len(m) < MIN_ROWS or self.has_nonfinite:
            return False
        with self._prepare_lock:
            if not self._tried:
                self._first_pass = Int8Index.build(m.vectors, m.norms)
                self._tried = True
        return self._first_pass is not None


__all__ = ["Filters", "SearchIndex"]
