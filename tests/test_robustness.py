"""Many users and no data lost: shared matrices across sessions, isolated choices, a killed fine-tune."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import core

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")


def test_sessions_share_one_matrix_and_keep_their_own_choices() -> None:
    from dashboard import cached, state

    first, second = AppTest.from_file(APP, default_timeout=180), AppTest.from_file(APP, default_timeout=180)
    for at in (first, second):
        at.switch_page("views/lookup.py").run()
        assert not at.exception
    first.text_input(key="lookup.text").input("apple").run()
    second.run()
    assert first.dataframe[0].value["piece"].tolist() == ["apple"]
    assert second.dataframe[0].value["piece"].tolist() == ["hello"]  # the default, untouched by session 1
    # one copy in memory: every session gets the very same read-only object from st.cache_resource
    assert cached.matrix(state.DEMO) is cached.matrix(state.DEMO)
    assert not cached.matrix(state.DEMO).vectors.flags.writeable


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_fine_tune_killed_mid_run_leaves_no_output(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    demo = core.demo_path()
    for name in ("model.safetensors", "tokenizer.json", "config.json", "vocab.txt"):
        (source / name).write_bytes((demo / name).read_bytes())
    before = _digest(source)
    out = tmp_path / "out"
    exe = Path(sys.executable).with_name("embedscope")
    proc = subprocess.Popen([str(exe), "finetune", str(source), "--corpus", "demo", "--objective", "sgns",
                             "--epochs", "200", "--out", str(out)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "EMBEDSCOPE_RUNS": str(tmp_path / "runs")})
    time.sleep(8)  # well into training
    assert proc.poll() is None, "the run ended before it could be killed; raise --epochs"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _digest(source) == before
    assert not out.exists()
    leftovers = [p for p in tmp_path.iterdir() if p.name not in {"source", "runs"}]
    assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in leftovers), leftovers
    for p in leftovers:
        assert not (p / "run.json").exists() or "status" in (p / "run.json").read_text()
