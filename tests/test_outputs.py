"""Outputs under attack: racing writers, a path that appears mid-write, --force against a source (issue 14.4)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import core
from core import export
from core._io import atomic_dir, atomic_file
from core.cli import main
from core.errors import OutputExistsError, ParameterError


def _race(make: object, target: Path, first: str, second: str) -> tuple[BaseException | None, BaseException | None]:
    """Writer A opens its temp, writer B then writes the same target fully, then A finishes. Deterministic."""
    opened, b_done = threading.Event(), threading.Event()
    errors: dict[str, BaseException | None] = {"a": None, "b": None}

    def writer(name: str, body: str, inside: threading.Event | None, wait: threading.Event | None,
               done: threading.Event | None) -> None:
        try:
            with make(target) as tmp:  # type: ignore[operator]
                (tmp / "data.txt" if tmp.is_dir() else tmp).write_text(body, encoding="utf-8")
                if inside is not None:
                    inside.set()
                if wait is not None:
                    assert wait.wait(10)
        except BaseException as err:  # the test inspects it
            errors[name] = err
        finally:
            for event in (inside, done):
                if event is not None:
                    event.set()

    a = threading.Thread(target=writer, args=("a", first, opened, b_done, None))
    a.start()
    assert opened.wait(10)
    b = threading.Thread(target=writer, args=("b", second, None, None, b_done))  # runs to the end, then A goes on
    b.start()
    b.join(10)
    a.join(10)
    return errors["a"], errors["b"]


@pytest.mark.parametrize("make", [atomic_file, atomic_dir], ids=["file", "folder"])
def test_two_writers_one_target_the_second_to_finish_fails(tmp_path: Path, make: object) -> None:
    target = tmp_path / "out"
    err_a, err_b = _race(make, target, "A", "B")
    assert err_b is None
    assert isinstance(err_a, OutputExistsError), err_a
    body = target / "data.txt" if target.is_dir() else target
    assert body.read_text(encoding="utf-8") == "B"  # the finished write is intact, not replaced
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp left behind


def test_a_folder_created_at_out_during_an_export_is_kept(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    out = tmp_path / "out"

    def meanwhile(fraction: float, _msg: str) -> None:
        if not out.exists():  # a user's folder appears while the export writes
            out.mkdir()
            (out / "precious.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(OutputExistsError, match="appeared"):
        export.export(demo, out, "npy", rows=np.arange(50), progress=meanwhile)
    assert (out / "precious.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"]


def test_a_dangling_symlink_at_out_is_a_target_that_exists(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    out = tmp_path / "out.txt"
    out.symlink_to(tmp_path / "nowhere.txt")
    with pytest.raises(OutputExistsError):
        export.export(demo, out, "word2vec", rows=np.arange(5))
    assert not (tmp_path / "nowhere.txt").exists() and out.is_symlink()


@pytest.fixture
def model_copy(tmp_path: Path, demo_dir: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(demo_dir, folder)
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    if not (folder / "config.json").exists():
        (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", ["merges.txt", "config.json", "tokenizer_config.json", "vocab.txt"])
def test_force_never_overwrites_a_file_the_source_is_made_of(model_copy: Path, name: str) -> None:
    if not (model_copy / name).exists():
        pytest.skip(f"the demo has no {name}")
    before = (model_copy / name).read_bytes()
    code = main(["export", str(model_copy / "model.safetensors"), "--format", "word2vec",
                 "--out", str(model_copy / name), "--force", "--sample", "10"])
    assert code == 2
    assert (model_copy / name).read_bytes() == before


def test_force_never_overwrites_an_explicit_vocab_file(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "v").mkdir()
    np.save(tmp_path / "w" / "m.npy", np.ones((3, 2), dtype=np.float32))
    vocab = tmp_path / "v" / "words.txt"
    vocab.write_text("x\ny\nz\n", encoding="utf-8")
    m = core.load(tmp_path / "w" / "m.npy", vocab=vocab)
    with pytest.raises(ParameterError, match="source was read from"):
        export.export(m, vocab, "word2vec", force=True)
    assert vocab.read_text(encoding="utf-8") == "x\ny\nz\n"
    code = main(["export", str(tmp_path / "w" / "m.npy"), "--vocab", str(vocab), "--format", "word2vec",
                 "--out", str(vocab), "--force"])
    assert code == 2 and vocab.read_text(encoding="utf-8") == "x\ny\nz\n"


def test_second_export_to_the_same_out_exits_2(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "e"
    args = ["export", str(demo_dir), "--format", "npy", "--out", str(out), "--sample", "20", "--no-verify"]
    assert main(args) == 0
    assert main(args) == 2


def test_outputs_follow_the_umask(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    old = os.umask(0o022)
    try:
        export.export(demo, tmp_path / "f.txt", "word2vec", rows=np.arange(5))
        export.export(demo, tmp_path / "d", "npy", rows=np.arange(5))
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in (tmp_path / "d").iterdir())


def test_force_still_replaces_an_earlier_output(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    out = tmp_path / "d"
    export.export(demo, out, "npy", rows=np.arange(5))
    export.export(demo, out, "npy", rows=np.arange(7), force=True)
    assert core.load(out).shape[0] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
