"""The one place that keeps quick derived results: ``st.cache_resource``, keyed by specs, ids and parameters.

A matrix is opened once per process and shared by every session (read-only arrays). A matrix argument is
hashed by its cache id (:func:`key_of`: its source key, or its content fingerprint when derived), through
``hash_funcs``, so that functions take the matrix itself and never hash an array. Long computations, which
draw a progress bar and can be cancelled, go through :mod:`dashboard.longrun` instead (same keys).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import core
from core import projection as pj
from core import search, stats
from core.access import check_allowed
from core.matrix import EmbeddingMatrix
from dashboard.state import SourceSpec

UPLOAD_ROOT_ENV = "EMBEDSCOPE_UPLOADS"

def key_of(m: EmbeddingMatrix) -> str:
    """The cache id of a matrix: its source key, or its content fingerprint when derived."""
    return m.provenance.key or m.fingerprint


def _selection_key(selection: pj.Selection) -> str:
    return repr(selection.config)


#: How cached functions hash their arguments: a matrix by its cache id, a selection by its config (with the matrix
#: beside it, that names the rows).
BY_KEY: dict[str | type[Any], Callable[[Any], Any]] = {EmbeddingMatrix: key_of, pj.Selection: _selection_key}


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
        from core.finetune import runs_root

        source = check_allowed(spec.value, [runs_root().resolve()])
    m = core.load(source, tensor=spec.tensor or None, vocab=spec.vocab or None, format=spec.format or None,
                  output=spec.output)
    _share_vocabulary(m)
    return m


@st.cache_resource(show_spinner=False)
def _vocabularies() -> tuple[dict[str, weakref.ref[EmbeddingMatrix]], threading.Lock]:
    """Per process: the first open matrix of each vocabulary (by digest), held weakly, and its lock."""
    return {}, threading.Lock()


def _share_vocabulary(m: EmbeddingMatrix) -> None:
    """Let ``m`` use the tokens and index of an open matrix of the same vocabulary (one copy for both)."""
    owners, lock = _vocabularies()
    with lock:
        for gone in [d for d, r in owners.items() if r() is None]:
            del owners[gone]
        ref = owners.get(m.vocabulary_digest)
        first = ref() if ref is not None else None
        if first is None or not m.share_vocabulary(first):
            owners[m.vocabulary_digest] = weakref.ref(m)


@st.cache_resource(show_spinner="Computing statistics…", max_entries=16, hash_funcs=BY_KEY)
def summary(m: EmbeddingMatrix) -> stats.Stats:
    return stats.summary(m)


@st.cache_resource(show_spinner="Computing per-dimension statistics…", max_entries=16, hash_funcs=BY_KEY)
def per_dimension(m: EmbeddingMatrix) -> tuple[np.ndarray, np.ndarray]:
    mean, std = stats.per_dimension(m)
    mean.setflags(write=False)
    std.setflags(write=False)
    return mean, std


@st.cache_resource(show_spinner=False, max_entries=8, hash_funcs=BY_KEY)
def search_prepared(m: EmbeddingMatrix) -> threading.Thread:
    """Starts, once per matrix and process, the build of the int8 first pass on a thread of its own, so that a
    page's second query does not pay for it (its first queries scan in float32 meanwhile)."""
    worker = threading.Thread(target=search.prepare_search, args=(m,), daemon=True,
                              name="embedscope-prepare-search")
    worker.start()
    return worker


@st.cache_resource(show_spinner=False, max_entries=256, hash_funcs=BY_KEY)
def neighbors(m: EmbeddingMatrix, query: str, k: int, metric: search.Metric, method: str,
              filters: search.Filters) -> search.Neighbors:
    """A query of the Neighbours page: ``search.analogy`` (3CosMul) or ``search.neighbors``."""
    if method == "mul":
        return search.analogy(m, query, k=k, method="mul", filters=filters)
    return search.neighbors(m, query, k=k, metric=metric, filters=filters)


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=16, hash_funcs=BY_KEY)
def corpus_rows(m: EmbeddingMatrix, path: str) -> np.ndarray:
    """:func:`core.compare.corpus_rows`, once per (matrix, corpus file)."""
    from core import compare

    return compare.corpus_rows(m, path)


@st.cache_resource(show_spinner="Writing the quantised copy…", max_entries=4, hash_funcs=BY_KEY)
def quantized_zip(m: EmbeddingMatrix, fmt: str) -> bytes:
    """The ``fmt`` copy of ``m`` as a zipped safetensors folder (for a download button)."""
    import io
    import tempfile
    import zipfile

    from core import compare

    with tempfile.TemporaryDirectory(prefix="embedscope-quant-") as tmp:
        done = compare.export_quantized(m, fmt, Path(tmp) / f"embeddings-{fmt}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for f in done.files:
                z.write(f, f"embeddings-{fmt}/{f.name}")
        return buf.getvalue()


@st.cache_resource(show_spinner="Choosing points…", max_entries=32, hash_funcs=BY_KEY)
def selection(m: EmbeddingMatrix, config: pj.SelectionConfig) -> pj.Selection:
    """:func:`core.projection.select`, once per (matrix, config)."""
    return pj.select(m, config)


@st.cache_resource(show_spinner="Colouring the points…", max_entries=32, hash_funcs=BY_KEY)
def colouring(m: EmbeddingMatrix, selection: pj.Selection, by: str, lang: str) -> pj.Colouring:
    """:func:`core.projection.colour`, once per (matrix, selection, colour)."""
    return pj.colour(m, selection, by, lang)


@st.cache_resource(show_spinner=False)
def _projection_jobs(root: str) -> pj.ProjectionJobs:
    return pj.ProjectionJobs(pj.ProjectionStore(root))


def projection_jobs() -> pj.ProjectionJobs:
    """This process's background projection jobs (t-SNE, UMAP), for the cache folder configured now."""
    return _projection_jobs(str(pj.cache_root()))
