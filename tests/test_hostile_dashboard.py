"""Each hostile or malformed file, opened from the sidebar, shows st.error and the app keeps serving."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

if TYPE_CHECKING:
    from tests.conftest import Canary

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _cases(d: Path, canary: Canary) -> dict[str, tuple[Path, str]]:
    (d / "bin").mkdir()
    (d / "bin" / "pytorch_model.bin").write_bytes(pickle.dumps({"w": canary.payload}))
    (d / "evil.pdparams").write_bytes(pickle.dumps({"weight": canary.payload}))
    (d / "lies.txt").write_text("9 2\na 1 2\n", encoding="utf-8")
    (d / "ragged.txt").write_text("2 3\na 1 2 3\nb 1 2\n", encoding="utf-8")
    (d / "empty.txt").write_bytes(b"")
    (d / "tsv").mkdir()
    np.savetxt(d / "tsv" / "vectors.tsv", np.ones((4, 2)), delimiter="\t")
    (d / "tsv" / "metadata.tsv").write_text("a\nb\nc\n", encoding="utf-8")
    save_file({"embed_tokens.weight": torch.ones(4, 2)}, str(d / "cut.safetensors"))
    data = (d / "cut.safetensors").read_bytes()
    (d / "cut.safetensors").write_bytes(data[:-8])
    return {
        "pickle in pytorch_model.bin": (d / "bin", "refused to unpickle"),
        "pickle in .pdparams": (d / "evil.pdparams", "refused to unpickle"),
        "header that lies": (d / "lies.txt", "header says 9 rows"),
        "ragged line": (d / "ragged.txt", "line 3"),
        "empty file": (d / "empty.txt", "empty"),
        "metadata count": (d / "tsv", "has 3 metadata rows but"),
        "truncated safetensors": (d / "cut.safetensors", "outside"),
    }


def test_hostile_files_show_an_error_and_the_app_keeps_serving(tmp_path: Path, canary: Canary,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    cases = _cases(tmp_path, canary)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    for name, (path, expected) in cases.items():
        at.text_input(key="open.path").input(str(path)).run()
        at.button(key="open.go").click().run()
        assert not at.exception, name
        errors = [e.value for e in at.error] + [e.value for e in at.sidebar.error]
        assert any(expected in e and path.name in e for e in errors), (name, errors)
        assert at.title[0].value == "Overview", name  # still serving the demo
    assert not canary.path.exists()


def test_unforeseen_errors_in_the_sidebar_are_a_short_message(tmp_path: Path, demo_dir: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokenizer_config.json nested 100,000 deep (RecursionError) and a NUL in the path: no traceback."""
    import shutil

    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    folder = tmp_path / "model"
    shutil.copytree(demo_dir, folder)
    (folder / "tokenizer_config.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    for path, expected in ((str(folder), "Something went wrong"), (str(tmp_path / "a\0b"), "NUL")):
        at.text_input(key="open.path").input(path).run()
        at.button(key="open.go").click().run()
        assert not at.exception, path
        errors = [e.value for e in at.error] + [e.value for e in at.sidebar.error]
        assert any(expected in e for e in errors), (path, errors)
        assert all("Traceback" not in e and len(e) < 400 for e in errors)
        assert at.title[0].value == "Overview"  # the page still renders
