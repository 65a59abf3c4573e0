"""The Release check page under AppTest: a pair sent as the Fine-tune page sends it, the verdict, the checks table
(the same statuses as core.gate), and the three downloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import core
from core import export
from core.gate import gate
from dashboard.state import SourceSpec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("gate_page")
    demo = core.load("demo")
    rows = np.arange(2000, 3500)
    base = core.EmbeddingMatrix(np.array(demo.vectors[rows]), [demo.index_to_key[i] for i in rows])
    v = np.array(base.vectors)
    v[:5] = 0  # five rows zeroed: a failing release
    specs = {}
    for name, m in (("old", base), ("new", base.with_vectors(v))):
        export.export(m, d / name, "npy")
        specs[name] = SourceSpec("path", str(d / name), label=name)
    return {"root": d, "specs": specs, "old": base, "new": base.with_vectors(v)}


def test_release_check_page(pair: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(pair["root"]))
    specs: dict[str, SourceSpec] = pair["specs"]  # type: ignore[assignment]
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.session_state["gate.preselect"] = (specs["old"], specs["new"])
    at.switch_page("views/gate.py").run()
    assert not at.exception, at.exception
    at.button(key="gate.go").click().run()
    assert not at.exception, at.exception
    assert any("Verdict: FAIL" in e.value for e in at.error), [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    oracle = gate(pair["new"], pair["old"])  # type: ignore[arg-type]
    assert dict(zip(table["id"], table["status"], strict=True)) == {c.id: c.status for c in oracle.checks}
    labels = {b.label for b in at.get("download_button")}
    assert {"HTML report", "JUnit XML", "Markdown summary"} <= labels
