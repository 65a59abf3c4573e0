"""The output embedding with one switch (issue 15): output=True / --output-embedding / the sidebar toggle,
for untied and tied Hugging Face checkpoints and GGUF files; the tables are checked against what was written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import core
from core.errors import FormatError


def _checkpoint(folder: Path, tied: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    inp, out = (rng.standard_normal((50, 8)).astype(np.float32) for _ in range(2))
    folder.mkdir()
    tensors = {"model.embed_tokens.weight": inp} if tied else {"model.embed_tokens.weight": inp, "lm_head.weight": out}
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"],
                                                    "tie_word_embeddings": tied}), encoding="utf-8")
    return inp, out


def test_untied_checkpoint_gives_lm_head(tmp_path: Path) -> None:
    inp, out = _checkpoint(tmp_path / "untied", tied=False)
    m = core.load(tmp_path / "untied", output=True)
    np.testing.assert_array_equal(m.vectors, out)
    assert m.provenance.tensor == "lm_head.weight" and m.provenance.tied is False
    np.testing.assert_array_equal(core.load(tmp_path / "untied").vectors, inp)


def test_tied_checkpoint_gives_the_input_table_and_says_so(tmp_path: Path) -> None:
    inp, _ = _checkpoint(tmp_path / "tied", tied=True)
    m = core.load(tmp_path / "tied", output=True)
    np.testing.assert_array_equal(m.vectors, inp)
    assert m.provenance.tied is True and any("tied" in n for n in m.provenance.notes)


def test_one_table_formats_refuse_the_switch(tmp_path: Path) -> None:
    np.save(tmp_path / "e.npy", np.ones((4, 3), dtype=np.float32))
    with pytest.raises(FormatError, match="one table"):
        core.load(tmp_path / "e.npy", output=True)


def test_cli_switch(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "untied", tied=False)
    proc = subprocess.run([sys.executable, "-m", "core.cli", "info", str(tmp_path / "untied"), "--output-embedding",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["tensor"] == "lm_head.weight" and info["tied"] is False
