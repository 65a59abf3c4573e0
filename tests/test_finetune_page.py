"""The Fine-tune page under AppTest: a run on the bundled demo corpus, the runs list, reopen and compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core
from dashboard.state import DEMO, SourceSpec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("EMBEDSCOPE_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("views/finetune.py").run()
    assert not at.exception, at.exception
    return at


def test_page_lists_no_runs_at_first(page: AppTest) -> None:
    assert page.title[0].value == "Fine-tune"
    assert any("No runs yet" in i.value for i in page.info)
    labels = {n.label for n in page.number_input}
    assert {"epochs", "window", "negatives", "lr", "seed"} <= labels
    assert all(n.help for n in page.number_input)  # every hyperparameter says what it does


def test_sgns_run_then_reopen_and_compare(page: AppTest, tmp_path: Path) -> None:
    page.number_input(key="finetune.sgns.epochs").set_value(1).run()
    page.text_input(key="finetune.name").input("demo-run").run()
    page.button(key="finetune.start").click().run()
    assert not page.exception, page.exception
    assert not page.error, [e.value for e in page.error]
    out = tmp_path / "runs" / "demo-run"
    assert any(str(out) in s.value for s in page.success)
    assert core.load(out).shape == (30522, 384)
    assert len(page.dataframe) >= 2  # the last run's watch list and the runs table
    page.session_state["compare.limit"] = 4000  # the first 4,000 shared tokens keep this test quick
    page.button(key="finetune.pick.compare").click().run()
    assert not page.exception
    assert page.session_state["compare.preselect"] == (DEMO, SourceSpec("run", str(out), label="run demo-run"))
    assert page.title[0].value == "Compare"  # the button goes to the Compare page
    # the runs folder is outside the data roots (tmp_path is not under the working folder): still opens
    assert not page.exception and not page.error, [e.value for e in page.error]
    assert "Moved most" in [h.value for h in page.subheader]
    page.switch_page("views/finetune.py").run()
    page.button(key="finetune.pick.open").click().run()
    assert not page.exception
    assert page.session_state["embedscope.current"] == SourceSpec("run", str(out), label="run demo-run")


def test_classify_run_shows_both_reports(page: AppTest, tmp_path: Path) -> None:
    page.radio(key="finetune.objective").set_value("classify").run()
    page.number_input(key="finetune.classify.epochs").set_value(2).run()
    page.number_input(key="finetune.classify.freeze_epochs").set_value(1).run()
    page.button(key="finetune.start").click().run()
    assert not page.exception, page.exception
    assert not page.error, [e.value for e in page.error]
    labels = [mt.label for mt in page.metric]
    assert "frozen baseline macro-F1" in labels and "fine-tuned macro-F1" in labels
    assert any("macro avg" in c.value for c in page.code)


def test_bad_paths_are_errors_not_tracebacks(page: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page.radio(key="finetune.data_kind").set_value("Path").run()
    page.text_input(key="finetune.path").input(str(tmp_path / "missing.txt")).run()
    page.button(key="finetune.start").click().run()
    assert not page.exception
    assert any("outside the folders" in e.value for e in page.error)  # not under the server's data roots
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    page.button(key="finetune.start").click().run()
    assert not page.exception
    assert any("no such corpus file" in e.value for e in page.error)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_processes_are_offered_only_with_several_devices_or_four_cores(page: AppTest) -> None:
    from core.finetune.distributed import offered_processes, processes_offered

    assert offered_processes("cuda", 1, 64) == 1 and offered_processes("cuda", 4, 64) == 4
    assert offered_processes("cpu", 0, 2) == 1 and offered_processes("cpu", 0, 3) == 1
    assert offered_processes("cpu", 0, 4) == 4 and offered_processes("mps", 1, 8) == 1
    shown = any(n.label == "processes" for n in page.number_input)
    assert shown == (processes_offered() > 1)
