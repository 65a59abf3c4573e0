"""The dashboard's one helper for long work: computed once per server, followed by a second session, cancelled."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest


def _script() -> None:  # runs as the page script: imports inside
    import os
    from pathlib import Path

    import streamlit as st

    from dashboard import longrun

    log = Path(os.environ["LONGRUN_LOG"])

    def compute(progress):  # type: ignore[no-untyped-def]
        progress(0.5, "half")
        with log.open("a") as f:
            f.write("computed\n")
        return {"answer": 42}

    value = longrun.once(os.environ["LONGRUN_KIND"], ("m", 1), compute, "Working")
    st.write(f"value={value['answer']}")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    log = tmp_path / "log.txt"
    kind = f"test-{uuid.uuid4().hex}"  # the store is process-wide: each test its own kind
    monkeypatch.setenv("LONGRUN_LOG", str(log))
    monkeypatch.setenv("LONGRUN_KIND", kind)
    return log, kind


def _values(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("value=")]


def _computed(log: Path) -> int:
    return log.read_text().count("computed") if log.exists() else 0


def test_computed_once_for_every_session(env: tuple[Path, str]) -> None:
    log, _ = env
    first = AppTest.from_function(_script).run(timeout=30)
    assert not first.exception and _values(first) == ["value=42"]
    second = AppTest.from_function(_script).run(timeout=30)  # another session, same key
    first.run(timeout=30)  # and a rerun of the first
    assert _values(second) == ["value=42"] and _values(first) == ["value=42"]
    assert _computed(log) == 1


def test_a_cancelled_job_stays_cancelled_until_run_again(env: tuple[Path, str]) -> None:
    log, kind = env
    at = AppTest.from_function(_script)
    at.session_state["longrun.cancelled"] = {kind: ("m", 1)}  # what the Cancel button's on_click leaves
    at.run(timeout=30)
    assert not at.exception and not _values(at) and _computed(log) == 0
    assert any("cancelled; nothing was kept" in i.value for i in at.info)
    at.run(timeout=30)  # any other click: still cancelled, nothing starts by itself
    assert _computed(log) == 0
    at.button(key=f"{kind}.again").click().run(timeout=30)
    assert _values(at) == ["value=42"] and _computed(log) == 1


def test_a_second_session_follows_the_first_instead_of_computing(env: tuple[Path, str]) -> None:
    from dashboard import longrun

    log, kind = env
    flight, mine = longrun.results().claim((kind, ("m", 1)))  # a first session is computing it
    assert mine
    landed = threading.Timer(1.0, lambda: longrun.results().land((kind, ("m", 1)), flight, {"answer": 7}))
    landed.start()
    try:
        at = AppTest.from_function(_script).run(timeout=30)
    finally:
        landed.join()
    assert not at.exception and _values(at) == ["value=7"] and _computed(log) == 0


def test_when_the_first_session_cancels_the_follower_computes(env: tuple[Path, str]) -> None:
    from dashboard import longrun

    log, kind = env
    flight, _ = longrun.results().claim((kind, ("m", 1)))
    cancelled = threading.Timer(1.0, lambda: longrun.results().land((kind, ("m", 1)), flight, None))
    cancelled.start()
    try:
        at = AppTest.from_function(_script).run(timeout=30)
    finally:
        cancelled.join()
    assert _values(at) == ["value=42"] and _computed(log) == 1


def test_memory_is_given_back_after_each_job(env: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard import memory

    trims: list[int] = []
    monkeypatch.setattr(memory, "give_back", lambda: trims.append(1) or True)
    at = AppTest.from_function(_script).run(timeout=30)
    at.run(timeout=30)  # a hit computes nothing and trims nothing
    assert _values(at) == ["value=42"] and trims == [1]
