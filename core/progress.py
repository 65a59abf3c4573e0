"""Progress and cancellation for long jobs.

Every long job takes ``progress: ProgressFn | None`` (fraction done in [0, 1], and a message) and
``cancel: CancelFn | None`` (returns True to stop). The page passes ``st.progress``; the CLI a bar.
"""

from __future__ import annotations

from collections.abc import Callable

from core.errors import Cancelled

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Reporter:
    """Calls the progress callback and raises :class:`Cancelled` when the cancel check says so."""

    def __init__(self, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> None:
        self._progress = progress
        self._cancel = cancel

    def __call__(self, fraction: float, message: str = "") -> None:
        if self._cancel is not None and self._cancel():
            raise Cancelled(f"cancelled at {fraction:.0%}: {message}" if message else "cancelled")
        if self._progress is not None:
            self._progress(min(max(fraction, 0.0), 1.0), message)
