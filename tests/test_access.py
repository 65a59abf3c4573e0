"""Who gets in: data roots for typed paths, hub switch, the password gate (AppTest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.access import check_allowed
from core.errors import PathNotAllowed

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def test_paths_outside_the_roots_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "models").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "weights.npy").write_bytes(b"x")
    assert check_allowed(root / "models", [root]) == (root / "models").resolve()
    with pytest.raises(PathNotAllowed, match="EMBEDSCOPE_DATA_ROOTS"):
        check_allowed(outside / "weights.npy", [root])
    with pytest.raises(PathNotAllowed):
        check_allowed(root / ".." / "secret" / "weights.npy", [root])
    (root / "link").symlink_to(outside)
    with pytest.raises(PathNotAllowed):
        check_allowed(root / "link" / "weights.npy", [root])


def test_roots_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    (tmp_path / "b").mkdir()
    assert check_allowed(tmp_path / "b" / "x.txt") == (tmp_path / "b" / "x.txt").resolve()
    with pytest.raises(PathNotAllowed):
        check_allowed("/etc/passwd")


def test_a_run_opens_only_from_the_runs_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dashboard import cached
    from dashboard.state import SourceSpec

    monkeypatch.setenv("EMBEDSCOPE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path / "data"))
    (tmp_path / "runs").mkdir()
    with pytest.raises(PathNotAllowed):  # a "run" source is no way around the data roots
        cached.matrix(SourceSpec("run", str(tmp_path / "runs" / ".." / "secret")))


def test_sidebar_refuses_a_path_outside_the_roots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path / "allowed"))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.text_input(key="open.path").input("/etc/passwd").run()
    at.button(key="open.go").click().run()
    assert not at.exception
    assert any("outside the folders" in e.value for e in at.error)


def test_no_hub_setting_hides_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_NO_HUB", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert "Hugging Face hub" not in at.radio(key="open.kind").options


def test_password_gate_blocks_every_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_PASSWORD", "s3cret-pass")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert [t.value for t in at.title] == ["Embedscope"]
    assert not at.dataframe and not at.table and not at.sidebar.selectbox
    for page in ("views/lookup.py", "views/overview.py"):
        at.switch_page(page).run()
        assert not at.table and not at.dataframe and not at.get("altair_chart")
    at.text_input(key="auth.password").input("wrong")
    at.button[0].click().run()
    assert any("Wrong password" in e.value for e in at.error)
    assert not at.table
    at.text_input(key="auth.password").input("s3cret-pass")
    at.button[0].click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key="sidebar.matrix") is not None
    assert at.title[0].value in {"Overview", "Token lookup"}
