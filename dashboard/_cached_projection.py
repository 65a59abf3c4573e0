"""Projection results kept per process, keyed by (matrix key, selection config, projection config), and
the Projection page's settings kept per session.

A finished projection is kept in a small process-wide store (held by ``st.cache_resource``) that the page
can *ask* before computing. t-SNE and UMAP take seconds to minutes, so they also run as background jobs
(:class:`core.projection.ProjectionJobs`, one per process and cache folder) that keep their result on disk:
computed once per server, shared by sessions that ask at once, cancelled when the last one leaves. The page
polls the job for its ``st.progress``. Configs are frozen dataclasses; their ``repr`` is the key, never an array.
"""

from __future__ import annotations

import uuid
from typing import Any

import altair as alt
import streamlit as st

from core import projection as pj
from core.matrix import EmbeddingMatrix
from core.progress import ProgressFn
from dashboard.cached import ResultStore

#: Finished projections kept per process (each holds points × dims float32 coordinates).
MAX_PROJECTIONS = 24
_LAST = "projection.last"
_LAST_CHART = "projection.last_chart"

Key = tuple[str, str, str]


@st.cache_resource(show_spinner=False)
def _store() -> ResultStore[Key, pj.Projection]:
    return ResultStore(MAX_PROJECTIONS)


def key(matrix_key: str, selection: pj.SelectionConfig, config: pj.ProjectionConfig) -> Key:
    """The cache key of a projection: the matrix's key and the two configs' reprs."""
    return (matrix_key, repr(selection), repr(config))


@st.cache_resource(show_spinner="Choosing points…", max_entries=32)
def selection(_m: EmbeddingMatrix, matrix_key: str, config_repr: str,
              _config: pj.SelectionConfig) -> pj.Selection:
    """:func:`core.projection.select`, once per (matrix, config)."""
    return pj.select(_m, _config)


@st.cache_resource(show_spinner="Colouring the points…", max_entries=32)
def colouring(_m: EmbeddingMatrix, matrix_key: str, selection_repr: str, by: str, lang: str,
              _selection: pj.Selection) -> pj.Colouring:
    """:func:`core.projection.colour`, once per (matrix, selection, colour)."""
    return pj.colour(_m, _selection, by, lang)


@st.cache_resource(show_spinner=False)
def _jobs(root: str) -> pj.ProjectionJobs:
    return pj.ProjectionJobs(pj.ProjectionStore(root))


def jobs() -> pj.ProjectionJobs:
    """This process's projection jobs, for the cache folder the server is configured with now."""
    return _jobs(str(pj.cache_root()))


def waiter() -> str:
    """This session's name as a job waiter, so that its Cancel stops only what nobody else waits for."""
    name: str = st.session_state.setdefault("projection.waiter", uuid.uuid4().hex)
    return name


def keep(k: Key, result: pj.Projection) -> None:
    """Keep a finished projection (computed by a job, or read from the disk cache) under ``k``."""
    _store().put(k, result)


def cached(k: Key) -> pj.Projection | None:
    """The finished projection for ``k``, or None when it has not been computed in this process."""
    return _store().get(k)


def compute(m: EmbeddingMatrix, k: Key, sel: pj.Selection, config: pj.ProjectionConfig,
            progress: ProgressFn | None = None) -> pj.Projection:
    """Run the projection (with progress) and keep it under ``k``."""
    result = pj.project(m, sel, config, progress=progress)
    _store().put(k, result)
    return result


def remember_last(k: Key, chart: alt.TopLevelMixin | None) -> None:
    """Note which projection (and chart) this session looked at last, for the Export page."""
    st.session_state[_LAST] = k
    st.session_state[_LAST_CHART] = chart


def last(matrix_key: str) -> tuple[pj.Projection | None, Any]:
    """The projection of this matrix this session looked at last (if still cached), and its 2-D chart."""
    k = st.session_state.get(_LAST)
    if k is None or k[0] != matrix_key:
        return None, None
    return cached(k), st.session_state.get(_LAST_CHART)


_SETTINGS = "projection.settings"


def kept_settings(defaults: dict[str, Any]) -> dict[str, Any]:
    """This session's Projection settings (widget key → value), starting from ``defaults``.

    Streamlit forgets a widget's value when a run does not draw it — on every other page — so the page keeps
    its own copy under a plain key and hands it to each widget through :func:`bind`.
    """
    kept: dict[str, Any] = st.session_state.setdefault(_SETTINGS, {})
    for k, default in defaults.items():
        kept.setdefault(k, default)
    return kept


def _keep(key: str) -> None:
    st.session_state[_SETTINGS][key] = st.session_state[key]


def bind(key: str) -> dict[str, Any]:
    """Widget arguments that show the kept value of ``key`` and keep every change (``**bind(k)``).

    The widget takes its value only from here (no ``value=``/``index=``), so Streamlit never sees two.
    """
    st.session_state[key] = st.session_state[_SETTINGS][key]
    return {"key": key, "on_change": _keep, "args": (key,)}
