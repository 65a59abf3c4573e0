"""ONNX: MiniLM exported by torch.onnx and quantised by onnxruntime's quantize_dynamic (cached once per machine).

Oracles: MiniLM's float32 table from safetensors (exact for the float export, within one quantisation step for
the int8 one) and MiniLM's tokenizer ids.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import _realfiles
import numpy as np
import pytest

import core
from core.errors import FormatError

onnx = pytest.importorskip("onnx")


def _export(folder: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(core.demo_path())).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.tensor([[101, 7592, 2088, 102]])
    (folder / "float").mkdir(parents=True)
    (folder / "int8").mkdir()
    torch.onnx.export(Hidden(), (ids, torch.ones_like(ids)), str(folder / "float" / "model.onnx"),
                      input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}},
                      dynamo=False)
    quantize_dynamic(str(folder / "float" / "model.onnx"), str(folder / "int8" / "model.onnx"),
                     weight_type=QuantType.QInt8)
    for sub in ("float", "int8"):
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            if (core.demo_path() / name).is_file():
                shutil.copy(core.demo_path() / name, folder / sub / name)


@pytest.fixture(scope="session")
def minilm_onnx() -> Path:
    pytest.importorskip("onnxruntime")
    import torch

    folder = _realfiles.cache_dir() / f"minilm-onnx-torch{torch.__version__.split('+')[0]}"
    if (folder / "int8" / "model.onnx").is_file():
        return folder
    staged = _realfiles.cache_dir() / f".minilm-onnx.{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    _export(staged)
    with contextlib.suppress(OSError):
        os.rename(staged, folder)
    shutil.rmtree(staged, ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def minilm() -> core.EmbeddingMatrix:
    return core.load("demo")


def test_float_export_is_exactly_minilms_table(minilm_onnx: Path, minilm: core.EmbeddingMatrix) -> None:
    m = core.load(minilm_onnx / "float")
    assert m.provenance.format == "onnx" and m.provenance.tensor.endswith("word_embeddings.weight")
    np.testing.assert_array_equal(m.vectors, minilm.vectors)
    assert [p.id for p in m.lookup("Hello world")] == [7592, 2088]
    assert "Gather" in m.provenance.notes[0]


def test_int8_export_is_within_one_step(minilm_onnx: Path, minilm: core.EmbeddingMatrix) -> None:
    m = core.load(minilm_onnx / "int8" / "model.onnx")
    assert m.provenance.dtype in ("int8", "uint8") and m.provenance.tensor.endswith("_quantized")
    g = onnx.load(str(minilm_onnx / "int8" / "model.onnx"), load_external_data=False).graph
    scale = next(float(onnx.numpy_helper.to_array(i)) for i in g.initializer
                 if i.name.endswith("word_embeddings.weight_scale"))
    err = np.abs(m.vectors - np.asarray(minilm.vectors, dtype=np.float32)).max()
    assert err <= scale / 2 + 1e-6
    assert m.index_to_key == minilm.index_to_key


def test_no_embedding_lists_what_it_saw(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "dense.weight")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "dense.weight"], ["y"])], "g", [x], [y], [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    with pytest.raises(FormatError, match=r"dense\.weight \(4, 3\)"):
        core.load(tmp_path / "model.onnx")


def test_missing_or_escaping_external_data(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.ones((8, 4), dtype=np.float32), "embed.weight")
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 2])
    out = helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 2, 4])
    graph = helper.make_graph([helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"])], "g", [ids], [out],
                              [table])
    model = helper.make_model(graph)
    onnx.save(model, str(tmp_path / "model.onnx"), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    assert core.load(tmp_path / "model.onnx").shape == (8, 4)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(FormatError, match="weights.bin"):
        core.load(tmp_path / "model.onnx")
    loaded = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    for e in loaded.graph.initializer[0].external_data:
        if e.key == "location":
            e.value = "../../etc/passwd"
    onnx.save(loaded, str(tmp_path / "escape.onnx"))
    with pytest.raises(FormatError, match="plain file name"):
        core.load(tmp_path / "escape.onnx")


def test_garbage_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f garbage")
    with pytest.raises(FormatError, match="model.onnx"):
        core.load(bad)
