"""The one place that caches: large results in ``st.cache_resource``, keyed by specs and ids, never arrays.

A matrix is opened once per process and shared by every session (read-only arrays). Derived results are
keyed by the matrix's cheap source key plus their parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import streamlit as st

import core
from core import stats
from core.access import check_allowed
from core.matrix import EmbeddingMatrix
from dashboard.state import SourceSpec

UPLOAD_ROOT_ENV = "EMBEDSCOPE_UPLOADS"


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
    return core.load(source, tensor=spec.tensor or None, vocab=spec.vocab or None)


@st.cache_resource(show_spinner="Computing statistics…", max_entries=16)
def summary(_m: EmbeddingMatrix, key: str) -> stats.Stats:
    return stats.summary(_m)


@st.cache_resource(show_spinner="Computing per-dimension statistics…", max_entries=16)
def per_dimension(_m: EmbeddingMatrix, key: str) -> tuple[np.ndarray, np.ndarray]:
    mean, std = stats.per_dimension(_m)
    mean.setflags(write=False)
    std.setflags(write=False)
    return mean, std


def key_of(m: EmbeddingMatrix) -> str:
    """The cache id of a matrix: its source key, or its content fingerprint when derived."""
    return m.provenance.key or m.fingerprint
