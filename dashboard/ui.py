"""Small pieces every page uses: the current matrix, errors shown instead of tracebacks, metric-card values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from core.errors import EmbedscopeError
from core.matrix import EmbeddingMatrix
from core.numfmt import DIGITS, short, span
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


# A metric card cuts a value wider than its column with an ellipsis ("0.245 – 1.…"); a few significant
# digits keep values whole in a quarter-width column, and the card's help shows the full number.
def metric_value(value: float | None, digits: int = DIGITS) -> str:
    """A metric card's value: ``digits`` significant digits, thousands separators, "—" for None."""
    return "—" if value is None else short(float(value), digits)


def metric_range(lo: float, hi: float, digits: int = DIGITS) -> str:
    """A range for a metric card (``0.245 – 1.29``): short, and its two ends never print the same."""
    return span(float(lo), float(hi), digits)


def full_value(value: float | None) -> str | None:
    """The full number for a metric card's help (None when there is none)."""
    return None if value is None else f"{value!r}"
