"""`embedscope info|lookup|stats --json`: the public JSON shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core
from core.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith("{") else {})


def test_info_json(capsys: pytest.CaptureFixture[str], demo_dir: Path) -> None:
    code, info = _run(capsys, "info", str(demo_dir), "--json")
    assert code == 0
    assert {"format", "path", "tensor", "vocab_size", "dim", "dtype", "has_tokenizer"} <= info.keys()
    assert (info["vocab_size"], info["dim"], info["tensor"], info["has_tokenizer"]) == (
        30522, 384, "embeddings.word_embeddings.weight", True)


def test_lookup_json(capsys: pytest.CaptureFixture[str], demo: core.EmbeddingMatrix,
                     demo_weights: np.ndarray) -> None:
    code, out = _run(capsys, "lookup", "demo", "Hello", "--json")
    assert code == 0
    assert out["text"] == "Hello"
    (piece,) = out["pieces"]
    assert {"token", "id", "norm", "vector"} <= piece.keys()
    assert piece["token"] == "hello" and piece["id"] == 7592
    assert len(piece["vector"]) == 384
    assert np.array_equal(np.asarray(piece["vector"], dtype=np.float32), demo_weights[7592])
    assert piece["norm"] == pytest.approx(float(np.linalg.norm(demo_weights[7592])), rel=1e-6)
    _, special = _run(capsys, "lookup", "demo", "Hello world", "--special", "--json")
    assert [p["token"] for p in special["pieces"]] == ["[CLS]", "hello", "world", "[SEP]"]


def test_lookup_unknown_exits_2_with_message(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lookup", "demo", "🦜", "--json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'🦜' is not in the vocabulary" in err


def test_stats_json(capsys: pytest.CaptureFixture[str], demo_weights: np.ndarray) -> None:
    code, s = _run(capsys, "stats", "demo", "--json")
    assert code == 0
    assert s["shape"] == [30522, 384] and s["dtype"] == "float32"
    w = demo_weights.astype(np.float64)
    assert s["mean"] == pytest.approx(w.mean(), abs=1e-9)
    assert s["std"] == pytest.approx(w.std(), rel=1e-6)
    assert (s["min"], s["max"]) == (pytest.approx(w.min()), pytest.approx(w.max()))
    norms = np.linalg.norm(w, axis=1)
    assert s["norms"]["min"] == pytest.approx(norms.min(), rel=1e-5)
    assert s["norms"]["median"] == pytest.approx(np.median(norms), rel=1e-5)
    assert s["norms"]["max"] == pytest.approx(norms.max(), rel=1e-5)


def test_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x01")
    assert main(["info", str(bad), "--json"]) == 2
    assert "bad.safetensors" in capsys.readouterr().err


def test_console_script_runs() -> None:
    exe = Path(sys.executable).with_name("embedscope")
    proc = subprocess.run([str(exe), "info", "demo", "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["vocab_size"] == 30522
