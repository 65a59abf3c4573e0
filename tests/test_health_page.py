"""The Health page under AppTest: traffic lights for the demo, and red lights for a damaged matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _apptest import page_on
from streamlit.testing.v1 import AppTest

import core
from core.audit import CHECKS, TITLES

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def health() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("views/health.py").run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _badges(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "-badge[" in m.value]


def test_health_page_on_the_demo(health: AppTest, demo: core.EmbeddingMatrix) -> None:
    assert health.title[0].value == "Health"
    assert not health.error
    assert health.subheader[0].value == "8 pass · 3 warn · 0 fail · 1 n/a"  # no chat template: n/a; Bengali short-changed
    badges = _badges(health)
    assert len(badges) == len(CHECKS)
    assert sum("orange-badge" in b for b in badges) == 3 and not any("red-badge" in b for b in badges)
    labels = [e.label for e in health.expander]
    for cid in CHECKS:
        assert any(label.startswith(TITLES[cid]) for label in labels), cid
    assert "Under-trained tokens — warn (611 tokens)" in labels
    # Charts for the norms, the scores (histogram and candidates), cosines, dimensions and frequency.
    assert len(health.get("vega_lite_chart")) == 6
    candidates = _table(health, "score")
    assert list(candidates.columns[:3]) == ["token", "id", "score"] and len(candidates) == 611
    assert candidates["token"].str.fullmatch(r"\[unused\d+\]").mean() > 0.5
    captions = [c.value for c in health.caption]
    assert any("**encoder**" in c and "BertModel" in c for c in captions)  # the family, and where it came from
    assert sum(c.startswith("Premise: ") for c in captions) == len(CHECKS)  # every check says what it assumes
    downloads = [b.proto.label for b in health.get("download_button")]
    assert downloads == ["Report (HTML)", "Report (JSON)"]


def test_audit_runs_once_per_matrix_for_every_session(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from core.audit import runner

    scans: list[int] = []  # the rows of every matrix an audit read from here on (its first step)
    real_scan = runner.scan_rows

    def counted(m: core.EmbeddingMatrix, *args: Any, **kwargs: Any) -> Any:
        scans.append(len(m))
        return real_scan(m, *args, **kwargs)

    monkeypatch.setattr(runner, "scan_rows", counted)
    st.cache_resource.clear()  # start from an empty process cache: another test may have audited the demo
    first = AppTest.from_file(APP, default_timeout=180)
    first.switch_page("views/health.py").run()
    assert not first.exception, first.exception
    assert scans == [30522]
    shown = first.subheader[0].value
    first.run()                                      # a rerun draws from the cache
    other = AppTest.from_file(APP, default_timeout=180)
    other.switch_page("views/health.py").run()       # and so does another session
    assert not first.exception and not other.exception
    assert scans == [30522]
    assert first.subheader[0].value == other.subheader[0].value == shown


def test_damaged_matrix_shows_red_lights_and_the_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))  # the server opens only folders it is told
    v = np.random.default_rng(0).standard_normal((800, 32)).astype(np.float32)
    v[3] = np.nan
    v[9] = v[8]
    path = tmp_path / "damaged.npy"
    np.save(path, v)
    at = page_on(path, "health")
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith("5 pass · 0 warn · 2 fail")
    assert sum("red-badge" in b for b in _badges(at)) == 2
    rows = _table(at, "problem")
    assert rows["token"].tolist() == ["3"] and rows["problem"].tolist() == ["NaN"]
    groups = _table(at, "min cosine")
    assert groups["tokens"].tolist() == ["8, 9"] and groups["kind"].tolist() == ["exact"]
