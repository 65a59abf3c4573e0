"""Hugging Face and Meta checkpoints: real MiniLM, and checkpoints built here from its weights."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import core
from core.errors import FormatError, TokenNotFound, UnsafeFileError

if TYPE_CHECKING:
    from tests.conftest import Canary


def test_minilm_row_equals_transformers(demo: core.EmbeddingMatrix, demo_dir: Path) -> None:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(demo_dir), local_files_only=True)
    expected = model.get_input_embeddings().weight.detach().numpy()
    assert demo.shape == (30522, 384) == expected.shape
    assert demo.get_index("hello") == 7592
    assert [(p.token, p.id) for p in demo.lookup("Hello")] == [("hello", 7592)]
    assert np.array_equal(demo.get_vector(7592), expected[7592])
    assert np.array_equal(demo.vectors, expected)
    assert demo.provenance.tensor == "embeddings.word_embeddings.weight"
    assert demo.has_tokenizer and demo.tokenizer.scheme == "wordpiece"


def test_lookup_matches_the_real_tokenizer(demo: core.EmbeddingMatrix, demo_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(demo_dir), local_files_only=True)
    for text in ["Hello world", "Embeddings are unbelievably useful", "苹果 and 東京"]:
        ours = [p.id for p in demo.lookup(text)]
        assert ours == tok(text, add_special_tokens=False)["input_ids"]
        with_special = [p.id for p in demo.lookup(text, special=True)]
        assert with_special == tok(text)["input_ids"]


def test_vectors_are_read_only(demo: core.EmbeddingMatrix) -> None:
    with pytest.raises(ValueError):
        demo.vectors[0, 0] = 1.0
    with pytest.raises(ValueError):
        demo.get_vector("hello")[0] = 1.0
    with pytest.raises(ValueError):
        demo.norms[0] = 1.0


def test_unknown_word_suggests_spellings(demo: core.EmbeddingMatrix) -> None:
    with pytest.raises(TokenNotFound) as info:
        demo.get_index("helo")
    assert isinstance(info.value, KeyError)
    assert "hello" in info.value.suggestions
    assert "not in the vocabulary" in str(info.value)
    with pytest.raises(TokenNotFound, match="maps it to \\[UNK\\]"):
        demo.lookup("🦜", strict=True)


def test_token_kinds(demo: core.EmbeddingMatrix) -> None:
    kinds = demo.kinds
    assert kinds[demo.get_index("[CLS]")] == "special"
    assert kinds[demo.get_index("hello")] == "word"
    assert kinds[demo.get_index("##ing")] == "subword"
    assert kinds[demo.get_index("42")] == "number"
    assert kinds[demo.get_index("!")] == "punctuation"
    assert kinds[demo.get_index("東")] == "cjk"
    assert list(demo.metadata.columns) == ["id", "token", "kind"]


def _llama_like(folder: Path, demo: core.EmbeddingMatrix, demo_dir: Path, dtype: torch.dtype,
                shards: int = 1) -> torch.Tensor:
    """A decoder-style checkpoint: model.embed_tokens.weight + an untied lm_head, MiniLM's tokenizer."""
    folder.mkdir()
    emb = torch.from_numpy(np.array(demo.vectors)).to(dtype)
    head = (torch.from_numpy(np.array(demo.vectors)) * -2).to(dtype)
    other = torch.ones(4, 4, dtype=dtype)
    tensors = {"model.norm.weight": other, "model.embed_tokens.weight": emb, "lm_head.weight": head}
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
    else:
        weight_map = {}
        names = list(tensors)
        for i in range(shards):
            part = {n: tensors[n] for n in names[i::shards]}
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file(part, str(folder / fname))
            weight_map.update(dict.fromkeys(part, fname))
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "vocab_size": len(demo),
                                                    "tie_word_embeddings": False}))
    shutil.copy(demo_dir / "tokenizer.json", folder / "tokenizer.json")
    return emb


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_safetensors_dtypes(tmp_path: Path, demo: core.EmbeddingMatrix, demo_dir: Path,
                            dtype: torch.dtype) -> None:
    emb = _llama_like(tmp_path / "ckpt", demo, demo_dir, dtype)
    m = core.load(tmp_path / "ckpt")
    assert m.provenance.tensor == "model.embed_tokens.weight"
    assert m.provenance.dtype == str(dtype).removeprefix("torch.")
    assert m.provenance.tied is False
    assert "lm_head.weight" in m.provenance.candidates
    assert m.vectors.dtype == np.float32
    assert np.array_equal(m.vectors, emb.float().numpy())
    head = core.load(tmp_path / "ckpt", tensor="lm_head.weight")
    assert np.array_equal(head.vectors, (torch.from_numpy(np.array(demo.vectors)) * -2).to(dtype).float().numpy())


def test_sharded_safetensors(tmp_path: Path, demo: core.EmbeddingMatrix, demo_dir: Path) -> None:
    emb = _llama_like(tmp_path / "ckpt", demo, demo_dir, torch.bfloat16, shards=2)
    m = core.load(tmp_path / "ckpt")
    assert m.provenance.format == "safetensors-sharded"
    assert np.array_equal(m.vectors, emb.float().numpy())
    # the index file itself is a valid source too
    m2 = core.load(tmp_path / "ckpt" / "model.safetensors.index.json")
    assert m2.fingerprint == m.fingerprint


def test_pytorch_bin_and_meta_pth(tmp_path: Path, demo: core.EmbeddingMatrix, demo_dir: Path) -> None:
    emb = torch.from_numpy(np.array(demo.vectors))
    (tmp_path / "bin").mkdir()
    torch.save({"bert.embeddings.word_embeddings.weight": emb, "bert.pooler.dense.weight": torch.eye(3)},
               tmp_path / "bin" / "pytorch_model.bin")
    shutil.copy(demo_dir / "vocab.txt", tmp_path / "bin" / "vocab.txt")
    m = core.load(tmp_path / "bin")
    assert m.provenance.format == "pytorch-bin"
    assert np.array_equal(m.vectors, demo.vectors)
    assert m.get_index("hello") == 7592  # WordPiece built from vocab.txt alone
    (tmp_path / "meta").mkdir()
    torch.save({"tok_embeddings.weight": emb.half(), "output.weight": emb.half()},
               tmp_path / "meta" / "consolidated.00.pth")
    (tmp_path / "meta" / "params.json").write_text(json.dumps({"dim": 384, "vocab_size": len(demo)}))
    shutil.copy(demo_dir / "tokenizer.json", tmp_path / "meta" / "tokenizer.json")
    meta = core.load(tmp_path / "meta")
    assert meta.provenance.format == "meta-pth"
    assert meta.provenance.tensor == "tok_embeddings.weight"
    assert np.array_equal(meta.vectors, emb.half().float().numpy())


def test_fallback_by_vocab_size_and_unknown_tensor(tmp_path: Path, demo: core.EmbeddingMatrix,
                                                   demo_dir: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    save_file({"backbone.lookup_table": torch.from_numpy(np.array(demo.vectors)), "x": torch.zeros(2, 2)},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"vocab_size": len(demo), "auto_map": {"AutoModel": "evil.Model"}}))
    shutil.copy(demo_dir / "tokenizer.json", folder / "tokenizer.json")
    m = core.load(folder)
    assert m.provenance.tensor == "backbone.lookup_table"
    assert any("remote code" in n for n in m.provenance.notes)
    with pytest.raises(FormatError, match="no tensor named 'nope'"):
        core.load(folder, tensor="nope")


def test_missing_tokenizer(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    folder = tmp_path / "notok"
    folder.mkdir()
    save_file({"model.embed_tokens.weight": torch.zeros(10, 4)}, str(folder / "model.safetensors"))
    # One rule with .npy and .pdparams: row numbers as tokens, and a note that says so.
    m = core.load(folder)
    assert m.index_to_key[:3] == ("0", "1", "2") and m.provenance.vocab_source == "row numbers"
    assert any("no tokenizer files" in n for n in m.provenance.notes)
    m = core.load(folder, vocab="rows")
    assert m.index_to_key[:3] == ("0", "1", "2")


def test_bytelevel_and_sentencepiece_tokenizers(tmp_path: Path, lee_corpus: Path) -> None:
    from tokenizers.implementations import ByteLevelBPETokenizer, SentencePieceBPETokenizer

    lines = lee_corpus.read_text(encoding="utf-8").splitlines()
    for cls, marker, scheme in ((ByteLevelBPETokenizer, "Ġ", "bytelevel-bpe"),
                                (SentencePieceBPETokenizer, "▁", "sentencepiece")):
        tok = cls()
        tok.train_from_iterator(lines, vocab_size=600, min_frequency=2)
        folder = tmp_path / scheme
        folder.mkdir()
        tok.save(str(folder / "tokenizer.json"))
        n = tok.get_vocab_size()
        rng = np.random.default_rng(0)
        save_file({"transformer.wte.weight": torch.from_numpy(rng.normal(size=(n + 3, 8)).astype(np.float32))},
                  str(folder / "model.safetensors"))
        m = core.load(folder)
        assert m.tokenizer.scheme == scheme
        pieces = m.lookup("the government said")
        assert [p.id for p in pieces] == tok.encode("the government said").ids
        assert any(p.token.startswith(marker) for p in pieces)
        assert m.kinds[-1] == "unassigned"  # padding rows past the tokenizer's vocabulary
        assert m.unassigned_from == n


def test_pickle_payload_in_bin_is_refused(tmp_path: Path, canary: Canary) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": canary.payload}))
    with pytest.raises(UnsafeFileError, match="pytorch_model.bin"):
        core.load(folder, vocab="rows")
    assert not canary.path.exists()


def test_malformed_safetensors(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file({"embed_tokens.weight": torch.ones(8, 4)}, str(good))
    data = good.read_bytes()
    cases = {
        "truncated.safetensors": (data[: len(data) - 10], "outside|truncated"),
        "tiny.safetensors": (data[:5], "truncated"),
        "hugeheader.safetensors": (struct.pack("<Q", 10**9) + data[8:], "larger than the file"),
        "empty.safetensors": (b"", "truncated"),
    }
    header = json.dumps({"embed_tokens.weight": {"dtype": "Q7", "shape": [8, 4], "data_offsets": [0, 128]}}).encode()
    cases["dtype.safetensors"] = (struct.pack("<Q", len(header)) + header + bytes(128), "dtype 'Q7'")
    over = json.dumps({"a.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]},
                       "embed_tokens.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [32, 96]}}).encode()
    cases["overlap.safetensors"] = (struct.pack("<Q", len(over)) + over + bytes(96), "overlap")
    for name, (blob, pattern) in cases.items():
        p = tmp_path / name
        p.write_bytes(blob)
        with pytest.raises(FormatError, match=pattern) as info:
            core.load(p, vocab="rows")
        assert name in str(info.value)


def test_offline_hub_id_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="local path"):
        core.load("no-such-org/no-such-model-xyz")
    monkeypatch.setenv("EMBEDSCOPE_NO_HUB", "1")
    with pytest.raises(OfflineError, match="turned off"):
        core.load("no-such-org/no-such-model-xyz")
