"""Long work on a page: one progress bar, one Cancel button, and each result computed once per server.

Every page with a computation that takes seconds or more goes through here:

- :func:`once` runs ``compute(progress)`` once per (kind, key) for the whole server process — the key is the
  matrices' cache ids (``cached.key_of``) and the parameters, never arrays — and keeps the result in one
  process-wide LRU. A second session asking for the same key while it runs follows the first one's progress and
  gets its result instead of computing it again. A hit returns at once, drawing nothing.
- :func:`panel` draws the same bar and Cancel button for work that is not cached (writing a file, a fine-tune
  run) and yields the progress function to hand to ``core``.
- :func:`kept` keeps a cheap derived result (a rendered report) next to the long ones, without drawing.

Why not ``st.cache_resource`` for these: a cached function may not draw into a container made outside it, so
its progress bar would be recorded and replayed on every hit. Quick derived values (statistics, selections)
still use ``st.cache_resource`` (in :mod:`dashboard.cached`).

How Cancel works: a click reruns the page. Streamlit stops the running script at its next call into ``st`` —
the next progress update — by raising an exception that is not an ``Exception`` (so ``core`` lets it through
and removes whatever it was writing), and the rerun sees the click (its ``on_click``) and shows that the job
was cancelled instead of starting it again. Nothing is kept for a cancelled job; other sessions that were
following it compute it themselves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import streamlit as st

from core.progress import ProgressFn
from dashboard import memory, state

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ResultStore(Generic[K, V]):
    """A thread-safe LRU of finished results, shared by every session (results are read-only)."""

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

    def put(self, key: K, value: V) -> None:
        """Keep ``value``, dropping the least recently used results past the size."""
        with self.lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


#: Finished results kept per process, all kinds together (audits, comparisons, projections, benchmark runs).
MAX_RESULTS = 32
_POLL_S = 0.25
_NONE = object()


@dataclass
class _Flight:
    """A computation in flight: its latest progress, and a flag raised when it ends (with or without a result)."""

    fraction: float = 0.0
    message: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def now(self) -> tuple[float, str]:
        return self.fraction, self.message


class Results:
    """Process-wide: finished results, and the computations in flight (one per key)."""

    def __init__(self, size: int) -> None:
        self.store: ResultStore[tuple[str, Hashable], Any] = ResultStore(size)
        self._flights: dict[tuple[str, Hashable], _Flight] = {}
        self._lock = threading.Lock()

    def claim(self, key: tuple[str, Hashable]) -> tuple[_Flight, bool]:
        """The flight for ``key``, and whether the caller owns it (must compute) or follows it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    def land(self, key: tuple[str, Hashable], flight: _Flight, value: Any) -> None:
        """End the owner's flight; keep ``value`` unless it is None (cancelled or failed)."""
        if value is not None:
            self.store.put(key, value)
        with self._lock:
            self._flights.pop(key, None)
        flight.done.set()


@st.cache_resource(show_spinner=False)
def results() -> Results:
    """The one store of long results of this server process."""
    return Results(MAX_RESULTS)


def cached(kind: str, key: Hashable) -> Any | None:
    """The finished result of (kind, key) in this process, or None."""
    return results().store.get((kind, key))


def kept(kind: str, key: Hashable, make: Callable[[], T]) -> T:
    """A cheap result derived from a long one (e.g. its HTML report), made once and kept beside it; draws nothing,
    so it may run inside a download button's callback."""
    hit: T | None = cached(kind, key)
    if hit is None:
        hit = make()
        results().store.put((kind, key), hit)
    return hit


def _cancel_clicked(kind: str, key: Hashable) -> None:
    marks = state.CANCELLED.get() or {}
    marks[kind] = key
    state.CANCELLED.set(marks)


def was_cancelled(kind: str) -> bool:
    """Whether this session cancelled the :func:`panel` of ``kind`` in the click that led to this run. Reading
    clears the mark, so the notice shows once."""
    marks = state.CANCELLED.get() or {}
    return marks.pop(kind, _NONE) is not _NONE


def _bar(label: str, fraction: float = 0.0) -> Any:
    return st.progress(fraction, text=label)


def _text(label: str, message: str) -> str:
    return f"{label}: {message}" if message else label


def _track(bar: Any, label: str, wait: Callable[[float], bool], now: Callable[[], tuple[float, str]],
           poll: float = _POLL_S, suffix: str = "") -> None:
    """Redraw ``bar`` from ``now()`` (fraction, message) until ``wait(poll)`` says the work ended."""
    while not wait(poll):
        fraction, message = now()
        bar.progress(fraction, text=_text(label, message) + suffix)


def once(kind: str, key: Hashable, compute: Callable[[ProgressFn], T], label: str) -> T:
    """The result of ``compute`` for (kind, key): kept, followed from another session, or computed now with a
    progress bar and a Cancel button. When this session cancels it, the page says so and stops (a "Run again"
    button starts it anew); errors from ``compute`` propagate (wrap the call in ``ui.shown_errors``)."""
    found: T | None = cached(kind, key)
    if found is not None:
        return found
    marks = state.CANCELLED.get() or {}
    if kind in marks:
        # Cancelled here: it stays cancelled, whatever else the user clicks, until "Run again" or other settings.
        if marks[kind] == key:
            st.info(f"{label}: cancelled; nothing was kept.", icon=":material/cancel:")
            if not st.button("Run again", key=f"{kind}.again"):
                st.stop()
        del marks[kind]
    st.button("Cancel", key=f"{kind}.cancel", on_click=_cancel_clicked, args=(kind, key), icon=":material/stop:",
              help="stop it; nothing is kept")
    bar = _bar(label)
    store = results()
    while True:
        flight, mine = store.claim((kind, key))
        if mine:
            break
        # another session computes it: follow its progress
        _track(bar, label, flight.done.wait, flight.now, suffix=" (started in another session)")
        found = cached(kind, key)
        if found is not None:
            bar.empty()
            return found
        # It was cancelled or failed there: compute it here.

    def progress(fraction: float, message: str) -> None:
        flight.fraction, flight.message = fraction, message
        bar.progress(fraction, text=_text(label, message))

    value: T | None = None
    try:
        value = compute(progress)
    finally:
        store.land((kind, key), flight, value)
        memory.give_back()  # the job's temporary blocks, which glibc would otherwise keep at their peak
    bar.empty()
    return value


@contextmanager
def panel(kind: str, label: str) -> Iterator[ProgressFn]:
    """A progress bar and a Cancel button for work that is not cached (writing files, a fine-tune run); yields the
    progress function to hand to ``core``. After a Cancel, :func:`was_cancelled` (kind) is True in the rerun."""
    st.button("Cancel", key=f"{kind}.cancel", on_click=_cancel_clicked, args=(kind, None), icon=":material/stop:",
              help="stop it; nothing is written")
    bar = _bar(label)

    def progress(fraction: float, message: str) -> None:
        bar.progress(fraction, text=_text(label, message))

    try:
        yield progress
    finally:
        memory.give_back()
    bar.empty()


def follow(job: Any, label: str, cancel: Callable[[], str]) -> None:
    """Draw a background job's progress (``job.fraction``, ``job.message``, ``job.wait(s)``) until it ends, with a
    Cancel button that calls ``cancel()`` and shows what it returns (the job may go on for other sessions)."""
    if st.button("Cancel", key=f"{label}.cancel", icon=":material/stop:"):
        st.info(cancel())
        st.stop()
    bar = _bar(_text(label, job.message), job.fraction)
    _track(bar, label, job.wait, lambda: (job.fraction, job.message), poll=_POLL_S * 2)
    bar.empty()
