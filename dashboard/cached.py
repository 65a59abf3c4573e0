"""The one place that caches: large results in ``st.cache_resource``, keyed by specs and ids, never arrays.

A matrix is opened once per process and shared by every session (read-only arrays). Derived results are
keyed by the matrix's cheap source key plus their parameters.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import streamlit as st

import core
from core import search, stats
from core.access import check_allowed
from core.matrix import EmbeddingMatrix
from dashboard.state import SourceSpec

UPLOAD_ROOT_ENV = "EMBEDSCOPE_UPLOADS"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ResultStore(Generic[K, V]):
    """A thread-safe LRU of finished results, shared by every session (results are read-only).

    Long jobs (projections, audits, comparisons) run outside ``st.cache_resource`` so that their progress bar
    draws live; a page asks the store first and puts the result in when done. Hold one per kind of result
    in a ``st.cache_resource`` function so the process keeps a single instance.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self.lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: K, value: V) -> list[K]:
        """Keep ``value``; returns the keys that were evicted to make room."""
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            evicted = []
            while len(self._items) > self._size:
                evicted.append(self._items.popitem(last=False)[0])
            return evicted


def upload_root() -> Path:
    """Where uploads are saved (a setting; defaults to a cache folder in the home directory)."""
    root = os.environ.get(UPLOAD_ROOT_ENV) or str(Path.home() / ".cache" / "embedscope" / "uploads")
    return Path(root)


@st.cache_resource(show_spinner="Opening the matrix…", max_entries=8)
def matrix(spec: SourceSpec) -> EmbeddingMatrix:
    """Open ``spec`` once per process; every session shares the read-only result."""
    source: str | Path = core.demo_path() if spec.kind == "demo" else spec.value
    if spec.kind == "path":
        source = check_allowed(spec.value)
        if spec.vocab:
            check_allowed(spec.vocab)
    elif spec.kind == "upload":
        source = check_allowed(spec.value, [upload_root().resolve()])
    elif spec.kind == "run":  # the server's own fine-tune output, wherever the operator put the runs folder
        from core.finetune.runs import runs_root

        source = check_allowed(spec.value, [runs_root().resolve()])
    return core.load(source, tensor=spec.tensor or None, vocab=spec.vocab or None, format=spec.format or None,
                     output=spec.output)


@st.cache_resource(show_spinner="Computing statistics…", max_entries=16)
def summary(_m: EmbeddingMatrix, key: str) -> stats.Stats:
    return stats.summary(_m)


@st.cache_resource(show_spinner="Computing per-dimension statistics…", max_entries=16)
def per_dimension(_m: EmbeddingMatrix, key: str) -> tuple[np.ndarray, np.ndarray]:
    mean, std = stats.per_dimension(_m)
    mean.setflags(write=False)
    std.setflags(write=False)
    return mean, std


@st.cache_resource(show_spinner=False, max_entries=8)
def search_prepared(_m: EmbeddingMatrix, key: str) -> threading.Thread:
    """Starts, once per matrix and process, the build of the int8 first pass on a thread of its own, so that a
    page's second query does not pay for it (its first queries scan in float32 meanwhile)."""
    worker = threading.Thread(target=search.prepare_search, args=(_m,), daemon=True,
                              name="embedscope-prepare-search")
    worker.start()
    return worker


def key_of(m: EmbeddingMatrix) -> str:
    """The cache id of a matrix: its source key, or its content fingerprint when derived."""
    return m.provenance.key or m.fingerprint
