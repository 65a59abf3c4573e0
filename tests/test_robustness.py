"""Many users and no data lost: shared matrices across sessions, isolated choices, a killed fine-tune."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
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


# A fine-tune that says when it has taken its first step, then waits there (mid-run) until it is killed.
_TRAIN_UNTIL_KILLED = """
import sys
import core
from core import finetune

def progress(fraction, message):
    if fraction > 0:
        print("step", fraction, flush=True)
        sys.stdin.read()  # never answered: the test kills this process now

finetune.finetune(core.load(sys.argv[1]), finetune.demo_corpus(), finetune.SGNSConfig(epochs=3), sys.argv[2],
                  progress=progress)
"""


@pytest.mark.slow
def test_fine_tune_killed_mid_run_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    source = tmp_path / "source"
    source.mkdir()
    demo = core.demo_path()
    for name in ("model.safetensors", "tokenizer.json", "config.json", "vocab.txt"):
        (source / name).write_bytes((demo / name).read_bytes())
    before = _digest(source)
    out = tmp_path / "out"
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    with subprocess.Popen([sys.executable, "-c", _TRAIN_UNTIL_KILLED, str(source), str(out)], cwd=tmp_path,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": pythonpath,
                               "EMBEDSCOPE_RUNS": str(tmp_path / "runs")}) as proc:
        assert proc.stdout is not None
        # Read until the run has reported its first training step (it then waits there); EOF: it ended first.
        line = next((ln for ln in proc.stdout if ln.startswith("step ")), "")
        if line:
            proc.send_signal(signal.SIGKILL)
        assert line, f"the run ended before its first step (exit {proc.wait()})"
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert _digest(source) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]  # no output, no temporary folder, no run
    # A rerun into the same folder works, as if the killed run had never been.
    assert main(["finetune", str(source), "--corpus", "demo", "--epochs", "1", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out)
    assert core.load(out).shape == (30522, 384)
    assert _digest(source) == before


def test_open_matrices_of_one_vocabulary_share_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from dashboard import cached
    from dashboard.state import SourceSpec

    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes((core.demo_path() / "vocab.txt").read_bytes())
    rows = len(vocab.read_text(encoding="utf-8").splitlines())
    rng = np.random.default_rng(5)
    for name in ("a.npy", "b.npy", "c.npy"):
        np.save(tmp_path / name, rng.standard_normal((rows, 4), dtype=np.float32))
    swapped = vocab.read_text(encoding="utf-8").splitlines()
    swapped[0], swapped[1] = swapped[1], swapped[0]
    (tmp_path / "swapped.txt").write_text("\n".join(swapped) + "\n", encoding="utf-8")
    a, b, c = (cached.matrix(SourceSpec("path", str(tmp_path / n), vocab=str(vocab))) for n in ("a.npy", "b.npy",
                                                                                              "c.npy"))
    assert a.key_to_index is b.key_to_index is c.key_to_index  # one copy of the 30,522 tokens for three tables
    assert b.get_index("hello") == vocab.read_text(encoding="utf-8").splitlines().index("hello")
    other = cached.matrix(SourceSpec("path", str(tmp_path / "a.npy"), vocab=str(tmp_path / "swapped.txt")))
    assert other.key_to_index is not a.key_to_index and other.index_to_key[0] == swapped[0]
