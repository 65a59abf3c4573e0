"""Typed access to ``st.session_state``: which matrices are open and which one is current."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st


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

    kind: str
    value: str = ""
    tensor: str | None = None
    vocab: str | None = None
    label: str = ""
    format: str | None = None
    output: bool = False

    @property
    def title(self) -> str:
        return self.label or ("Demo: all-MiniLM-L6-v2" if self.kind == "demo" else self.value)


DEMO = SourceSpec("demo", label="Demo: all-MiniLM-L6-v2")
_CURRENT = "embedscope.current"
_OPENED = "embedscope.opened"


def opened() -> list[SourceSpec]:
    """Every matrix opened in this session, the demo first."""
    if _OPENED not in st.session_state:
        st.session_state[_OPENED] = [DEMO]
    value: list[SourceSpec] = st.session_state[_OPENED]
    return value


def current() -> SourceSpec:
    """The matrix the pages show."""
    spec = st.session_state.get(_CURRENT)
    return spec if isinstance(spec, SourceSpec) else DEMO


def set_current(spec: SourceSpec) -> None:
    """Make ``spec`` current and remember it among the opened matrices."""
    specs = opened()
    if spec not in specs:
        specs.append(spec)
    st.session_state[_CURRENT] = spec


def forget(spec: SourceSpec) -> None:
    """Drop ``spec`` from the opened list (the demo stays)."""
    specs = opened()
    if spec in specs and spec != DEMO:
        specs.remove(spec)
    if current() == spec:
        st.session_state[_CURRENT] = DEMO
