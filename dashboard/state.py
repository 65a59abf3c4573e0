"""Typed access to ``st.session_state``: which matrices are open, which one is current, and what one page hands
to another. Pages read and write session values only through the slots here (widget keys aside), so every value
has one name and one type.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

import streamlit as st

T = TypeVar("T")

SourceKind = Literal["demo", "path", "upload", "run", "hub"]


@dataclass(frozen=True)
class SourceSpec:
    """How to open a matrix; hashable, so it is the cache key (never the array itself).

    Attributes:
        kind: "demo", "path", "upload", "run" (a fine-tune output in the runs folder) or "hub".
        value: the path, upload folder or hub id ("" for the demo).
        tensor, vocab: the ``core.load`` overrides, when given.
        label: what the sidebar shows.
        format: the ``core.load`` format, when the user named one instead of detection.
        output: open the output embedding (``lm_head``) instead of the input one.
    """

    kind: SourceKind
    value: str = ""
    tensor: str | None = None
    vocab: str | None = None
    label: str = ""
    format: str | None = None
    output: bool = False

    @property
    def title(self) -> str:
        return self.label or ("Demo: all-MiniLM-L6-v2" if self.kind == "demo" else self.value)


Pair = tuple[SourceSpec, SourceSpec]


class Slot(Generic[T]):
    """One session value: its key and its type, read with a default."""

    def __init__(self, key: str, default: T) -> None:
        self.key = key
        self.default = default

    def get(self) -> T:
        return cast(T, st.session_state.get(self.key, self.default))

    def set(self, value: T) -> None:
        st.session_state[self.key] = value

    def pop(self) -> T:
        return cast(T, st.session_state.pop(self.key, self.default))

    def is_set(self) -> bool:
        return self.key in st.session_state


DEMO = SourceSpec("demo", label="Demo: all-MiniLM-L6-v2")
_CURRENT: Slot[SourceSpec | None] = Slot("embedscope.current", None)
_OPENED: Slot[list[SourceSpec] | None] = Slot("embedscope.opened", None)

#: (source, fine-tuned output) sent by the Fine-tune page to the Compare page, and (baseline, new) to the Release
#: check page. Each is applied once per pair sent; later choices on those pages win.
COMPARE_PRESELECT: Slot[Pair | None] = Slot("compare.preselect", None)
COMPARE_APPLIED: Slot[Pair | None] = Slot("compare.preselect_applied", None)
COMPARE_PAIR: Slot[Pair | None] = Slot("compare.pair", None)
GATE_PRESELECT: Slot[Pair | None] = Slot("gate.preselect", None)
#: The cache key of the last release check shown, so coming back shows it without pressing Check again.
GATE_LAST: Slot[Hashable | None] = Slot("gate.last", None)
#: The folder of this session's last fine-tune run, and whether the run name should be made afresh.
FINETUNE_LAST: Slot[str | None] = Slot("finetune.last", None)
FINETUNE_FRESH_NAME: Slot[bool] = Slot("finetune.fresh_name", False)
FINETUNE_AUTO_NAME: Slot[str] = Slot("finetune.auto_name", "")
#: The Projection page's kept settings (widget key → value), its last projection's cache key and 2-D chart.
PROJECTION_SETTINGS: Slot[dict[str, Any] | None] = Slot("projection.settings", None)
PROJECTION_LAST: Slot[Hashable | None] = Slot("projection.last", None)
PROJECTION_LAST_CHART: Slot[Any] = Slot("projection.last_chart", None)
#: Benchmarks results of this session: (settings, result).
BENCH_ANALOGIES: Slot[tuple[Hashable, Any] | None] = Slot("bm.result.analogies", None)
BENCH_PAIRS: Slot[tuple[Hashable, Any] | None] = Slot("bm.result.pairs", None)
#: Long jobs this session cancelled: job kind → the key it had (see ``dashboard.longrun``).
CANCELLED: Slot[dict[str, Hashable] | None] = Slot("longrun.cancelled", None)
_SESSION_ID: Slot[str | None] = Slot("embedscope.session_name", None)


def opened() -> list[SourceSpec]:
    """Every matrix opened in this session, the demo first."""
    specs = _OPENED.get()
    if specs is None:
        specs = [DEMO]
        _OPENED.set(specs)
    return specs


def current() -> SourceSpec:
    """The matrix the pages show."""
    spec = _CURRENT.get()
    return spec if isinstance(spec, SourceSpec) else DEMO


def set_current(spec: SourceSpec) -> None:
    """Make ``spec`` current and remember it among the opened matrices."""
    specs = opened()
    if spec not in specs:
        specs.append(spec)
    _CURRENT.set(spec)


def forget(spec: SourceSpec) -> None:
    """Drop ``spec`` from the opened list (the demo stays)."""
    specs = opened()
    if spec in specs and spec != DEMO:
        specs.remove(spec)
    if current() == spec:
        _CURRENT.set(DEMO)


def session_name() -> str:
    """A random name for this session (as a waiter on shared jobs, so its Cancel stops only its own wait)."""
    name = _SESSION_ID.get()
    if name is None:
        name = uuid.uuid4().hex
        _SESSION_ID.set(name)
    return name


def preselected(slot: Slot[Pair | None], applied: Slot[Pair | None] | None = None) -> Pair | None:
    """The pair another page sent through ``slot``, if it is a pair of specs (and not applied yet), and add its
    specs to the opened list. With ``applied``, a pair is handed out once; without, every time."""
    pre = slot.get()
    if not (isinstance(pre, tuple) and len(pre) == 2 and all(isinstance(s, SourceSpec) for s in pre)):
        return None
    if applied is not None:
        if applied.get() == pre:
            return None
        applied.set(pre)
    specs = opened()
    for s in pre:
        if s not in specs:
            specs.append(s)
    return pre


def kept_settings(defaults: dict[str, Any]) -> dict[str, Any]:
    """This session's Projection settings (widget key → value), starting from ``defaults``.

    Streamlit forgets a widget's value when a run does not draw it — on every other page — so the page keeps
    its own copy under a plain key and hands it to each widget through :func:`bind`.
    """
    kept = PROJECTION_SETTINGS.get()
    if kept is None:
        kept = {}
        PROJECTION_SETTINGS.set(kept)
    for k, default in defaults.items():
        kept.setdefault(k, default)
    return kept


def _keep(key: str) -> None:
    kept = PROJECTION_SETTINGS.get()
    if kept is not None:
        kept[key] = st.session_state[key]


def bind(key: str) -> dict[str, Any]:
    """Widget arguments that show the kept value of ``key`` and keep every change (``**bind(k)``).

    The widget takes its value only from here (no ``value=``/``index=``), so Streamlit never sees two.
    """
    st.session_state[key] = kept_settings({})[key]
    return {"key": key, "on_change": _keep, "args": (key,)}
