"""Comparisons kept per process for the Compare page, keyed by the two matrices' cache ids and the settings.

A comparison of two 30k-row matrices takes seconds, so a finished one is kept in a small process-wide store
(held by ``st.cache_resource``) that the page asks before computing: a hit shows at once, a miss runs with
``st.progress``. Progress cannot go through ``st.cache_resource`` itself (a cached function may not draw into
a container made outside it), hence the store. Keys are ``cached.key_of`` ids and plain settings, never arrays.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import streamlit as st

from core import compare as cp
from core.matrix import EmbeddingMatrix
from dashboard.cached import ResultStore

#: Finished results kept per process (a comparison holds a few per-token arrays: ~30 MB for 30k tokens).
MAX_ITEMS = 12


@st.cache_resource(show_spinner=False)
def store() -> ResultStore[Hashable, Any]:
    """The process-wide store of comparisons and quantisation reports."""
    return ResultStore(MAX_ITEMS)


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=16)
def corpus_rows(_m: EmbeddingMatrix, key: str, path: str) -> np.ndarray:
    """:func:`core.compare.corpus_rows`, once per (matrix, corpus file)."""
    return cp.corpus_rows(_m, path)


@st.cache_resource(show_spinner="Projecting A and B together…", max_entries=16)
def joint(_c: cp.Comparison, _a: EmbeddingMatrix, _b: EmbeddingMatrix, key: Hashable, tokens: tuple[str, ...],
          sample: int, method: str, seed: int) -> cp.JointProjection:
    """:func:`core.compare.joint_projection`, once per (comparison key, tokens, sample, method, seed)."""
    return cp.joint_projection(_c, _a, _b, tokens, sample=sample, method=method, seed=seed)


@st.cache_resource(show_spinner="Running the benchmarks on A and B…", max_entries=16)
def deltas(_a: EmbeddingMatrix, _b: EmbeddingMatrix, key_a: str, key_b: str, analogies: tuple[str, ...],
           pairs: tuple[str, ...]) -> list[cp.BenchmarkDelta]:
    """:func:`core.compare.benchmark_deltas`, once per (A, B, benchmark files)."""
    return cp.benchmark_deltas(_a, _b, list(analogies), list(pairs))


@st.cache_data(show_spinner="Writing the quantised copy…", max_entries=4)
def quantized_zip(_m: EmbeddingMatrix, key: str, fmt: str) -> bytes:
    """The ``fmt`` copy as a zipped safetensors folder (for a download button)."""
    import io
    import tempfile
    import zipfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="embedscope-quant-") as tmp:
        done = cp.export_quantized(_m, fmt, Path(tmp) / f"embeddings-{fmt}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for f in done.files:
                z.write(f, f"embeddings-{fmt}/{f.name}")
        return buf.getvalue()
