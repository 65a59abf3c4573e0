"""GGUF: the released SmolLM2 file, and files written by gguf's own writer from MiniLM and released tokenizers.

Oracles: MiniLM's float32 table (values within the quantisation step), the released ``tokenizer.json`` files
loaded by ``tokenizers`` (ids), transformers' conversion of SmolLM2's GGUF, and sentencepiece on the
released ``tokenizer.model`` that a GGUF file was written from.
"""

from __future__ import annotations

import json
from pathlib import Path

import _realfiles
import numpy as np
import pytest

import core
from core.errors import FormatError

gguf = pytest.importorskip("gguf")

SAMPLES = ["Hello world", "naïve café", "東京", "😀", "  two  spaces", "In 2024, it's 12345 o'clock!"]


def _write(path: Path, tables: dict[str, tuple[np.ndarray, object]], kv: dict[str, object],
           arch: str = "llama") -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in kv.items():
        if key == "tokens":
            w.add_token_list(value)  # type: ignore[arg-type]
        elif key == "merges":
            w.add_token_merges(value)  # type: ignore[arg-type]
        elif key == "types":
            w.add_token_types(value)  # type: ignore[arg-type]
        elif key == "scores":
            w.add_token_scores(value)  # type: ignore[arg-type]
        elif key == "model":
            w.add_tokenizer_model(str(value))
        elif key == "pre":
            w.add_tokenizer_pre(str(value))
        else:
            w.add_uint32(key, int(value))  # type: ignore[call-overload]
    for name, (rows, qtype) in tables.items():
        data = gguf.quantize(rows, qtype)
        w.add_tensor(name, data, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def minilm() -> core.EmbeddingMatrix:
    return core.load("demo")


@pytest.fixture(scope="session")
def minilm_gguf(tmp_path_factory: pytest.TempPathFactory, minilm: core.EmbeddingMatrix) -> dict[str, Path]:
    """MiniLM's table as F16, Q8_0, Q5_0 and Q4_0 with its WordPiece vocabulary (``tokenizer.ggml.model = bert``).

    gguf's Python writer quantises no K-quant (Q4_K and the like raise NotImplementedError there), so the
    4- and 5-bit files use the 32-value block types.
    """
    folder = tmp_path_factory.mktemp("gguf-minilm")
    rows = np.asarray(minilm.vectors, dtype=np.float32)
    special = set(minilm.tokenizer.special_tokens)
    types = [3 if t in special else 1 for t in minilm.index_to_key]
    types[minilm.get_index("[UNK]")] = 2
    kv = {"model": "bert", "tokens": list(minilm.index_to_key), "types": types}
    return {q.name: _write(folder / f"minilm-{q.name}.gguf", {"token_embd.weight": (rows, q)}, kv, "bert")
            for q in (gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.Q8_0,
                      gguf.GGMLQuantizationType.Q5_0, gguf.GGMLQuantizationType.Q4_0)}


@pytest.mark.parametrize("qtype,step", [("F16", 1e-3), ("Q8_0", 1 / 127), ("Q5_0", 1 / 15), ("Q4_0", 1 / 7)])
def test_quantised_tables_match_the_float_original(minilm_gguf: dict[str, Path], minilm: core.EmbeddingMatrix,
                                                    qtype: str, step: float) -> None:
    m = core.load(minilm_gguf[qtype])
    ref = np.asarray(minilm.vectors, dtype=np.float32)
    assert m.shape == ref.shape and m.provenance.format == "gguf" and m.provenance.dtype == qtype
    # Each value within one quantisation step of its row block's largest magnitude.
    scale = np.abs(ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(m.vectors - ref) <= step * scale + 1e-6)
    assert not m.vectors.flags.writeable
    hello = [p.id for p in m.lookup("Hello world")]
    assert hello == [p.id for p in minilm.lookup("Hello world")] == [7592, 2088]
    assert m.provenance.tied is True and "special" in m.kinds[minilm.get_index("[CLS]")]


def test_smollm2_released_gguf() -> None:
    path = _realfiles.smollm2_gguf()
    m = core.load(path)
    assert m.shape == (49152, 576)
    assert m.provenance.format == "gguf" and m.provenance.dtype == "Q8_0"
    assert m.provenance.tensor == "token_embd.weight" and m.provenance.tied is True
    from tokenizers import Tokenizer

    # transformers rebuilt the tokenizer from the same file: an independent reading of the metadata
    oracle = Tokenizer.from_file(str(_realfiles.smollm2_hf_folder() / "tokenizer.json"))
    for text in SAMPLES:
        assert [p.id for p in m.lookup(text)] == oracle.encode(text, add_special_tokens=False).ids, text
    assert m.get_index("Hello") == 19556
    assert m.metadata["gguf_type"].value_counts().to_dict() == {"normal": 49135, "control": 17}
    assert m.kinds[m.get_index("<|im_start|>")] == "special"
    # rows equal a direct dequantisation of the whole table
    reader = gguf.GGUFReader(str(path))
    (t,) = [t for t in reader.tensors if t.name == "token_embd.weight"]
    ref = gguf.dequantize(t.data[:4096], t.tensor_type)
    np.testing.assert_array_equal(m.vectors[:4096], ref)
    with pytest.raises(FormatError, match="no tensor 'output.weight'"):  # the file ties its output table
        core.load(path, tensor="output.weight")


@pytest.mark.parametrize("name,pre", [("qwen3", "qwen2"), ("llama3", "llama-bpe")])
def test_byte_level_bpe_from_released_tokenizers(tmp_path: Path, name: str, pre: str) -> None:
    """A GGUF written from a released tokenizer.json gives the same ids as that tokenizer.json."""
    from tokenizers import Tokenizer

    folder = _realfiles.npm_tokenizer(name)
    spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    added = {a["content"]: a["id"] for a in spec["added_tokens"]}
    n = max([*vocab.values(), *added.values()]) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [1] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in spec["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    rows = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    path = _write(tmp_path / f"{name}.gguf", {"token_embd.weight": (rows, gguf.GGMLQuantizationType.F32)},
                  {"model": "gpt2", "pre": pre, "tokens": tokens, "merges": merges, "types": types})
    m = core.load(path)
    oracle = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in [*SAMPLES, "<|im_start|>user\nhi<|im_end|>"]:
        assert [p.id for p in m.lookup(text)] == oracle.encode(text, add_special_tokens=False).ids, text


def test_sentencepiece_gguf_matches_the_released_model(tmp_path: Path) -> None:
    """A llama-type GGUF written (with gguf's own vocab reader) from mistral's tokenizer.model."""
    spm = pytest.importorskip("sentencepiece")
    model = _realfiles.mistral_sentencepiece("v1")
    src = tmp_path / "spm"
    src.mkdir()
    (src / "tokenizer.model").write_bytes(model.read_bytes())
    vocab = gguf.vocab.SentencePieceVocab(src)
    tokens, scores, types = zip(*vocab.all_tokens(), strict=True)
    rows = np.random.default_rng(1).standard_normal((len(tokens), 8)).astype(np.float32)
    path = _write(tmp_path / "mistral.gguf", {"token_embd.weight": (rows, gguf.GGMLQuantizationType.F16)},
                  {"model": "llama", "tokens": list(tokens), "scores": list(scores), "types": list(types),
                   "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.bos_token_id": 1,
                   "tokenizer.ggml.eos_token_id": 2})
    m = core.load(path)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    for text in SAMPLES:
        assert [p.id for p in m.lookup(text)] == sp.encode(text), text
    assert m.tokenizer.scheme == "sentencepiece"
    assert m.index_to_key[m.lookup("world")[0].id] == "▁world"


def test_untied_output_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    inp, out = (rng.standard_normal((64, 16)).astype(np.float32) for _ in range(2))
    tokens = [f"t{i}" for i in range(64)]
    path = _write(tmp_path / "untied.gguf", {"token_embd.weight": (inp, gguf.GGMLQuantizationType.F32),
                                            "output.weight": (out, gguf.GGMLQuantizationType.F32)},
                  {"tokens": tokens})
    m = core.load(path)
    assert m.provenance.tied is False and m.provenance.candidates == ("output.weight",)
    np.testing.assert_array_equal(m.vectors, inp)
    o = core.load(path, tensor="output.weight")
    np.testing.assert_array_equal(o.vectors, out)
    assert o.index_to_key == tuple(tokens)


def _gguf_bytes(tmp_path: Path) -> bytes:
    rows = np.random.default_rng(3).standard_normal((32, 64)).astype(np.float32)
    return _write(tmp_path / "ok.gguf", {"token_embd.weight": (rows, gguf.GGMLQuantizationType.Q8_0)},
                  {"tokens": [f"t{i}" for i in range(32)]}).read_bytes()


@pytest.mark.parametrize("cut", [6, 30, 120, -100])
def test_truncated_files_are_one_clear_error(tmp_path: Path, cut: int) -> None:
    data = _gguf_bytes(tmp_path)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:cut])
    with pytest.raises(FormatError, match=r"bad\.gguf"):
        core.load(bad)


def test_a_type_the_reader_cannot_dequantise_is_named(tmp_path: Path) -> None:
    qtype = gguf.GGMLQuantizationType.Q8_K
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    raw = np.zeros((4, 256 // block * size), dtype=np.uint8)
    w = gguf.GGUFWriter(str(tmp_path / "q8k.gguf"), "llama")
    w.add_tensor("token_embd.weight", raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(FormatError, match="Q8_K"):
        core.load(tmp_path / "q8k.gguf")


def test_smollm2_table_exports_to_safetensors_and_projector(tmp_path: Path) -> None:
    """A GGUF file's table written as safetensors (+ tokenizer) and as Projector TSV reopens to the same rows."""
    from core import export

    m = core.load(_realfiles.smollm2_gguf())
    export.export(m, tmp_path / "st", "safetensors")
    back = core.load(tmp_path / "st")
    np.testing.assert_array_equal(back.vectors, m.vectors)
    assert back.index_to_key == m.index_to_key
    assert [p.id for p in back.lookup("Hello world")] == [p.id for p in m.lookup("Hello world")]
    rows = np.arange(0, len(m), 97)  # a sample of rows: the whole table as text is 300 MB
    export.export(m, tmp_path / "tsv", "projector", rows=rows)
    tsv = core.load(tmp_path / "tsv")
    np.testing.assert_allclose(tsv.vectors, m.vectors[rows], rtol=1e-6)
    assert tsv.index_to_key == tuple(m.index_to_key[i] for i in rows)
