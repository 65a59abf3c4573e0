"""Small pieces every page uses: the current matrix, and errors shown instead of tracebacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import EmbedscopeError
from core.matrix import EmbeddingMatrix
from dashboard import cached, state


@contextmanager
def shown_errors(stop: bool = True) -> Iterator[None]:
    """Show our errors as ``st.error`` (and stop the page) instead of a traceback."""
    try:
        yield
    except EmbedscopeError as err:
        st.error(str(err))
        if stop:
            st.stop()


def current_matrix() -> EmbeddingMatrix:
    """The current matrix; when it cannot be opened, the error is shown and the page stops."""
    spec = state.current()
    with shown_errors():
        return cached.matrix(spec)
    raise AssertionError("unreachable")  # pragma: no cover
