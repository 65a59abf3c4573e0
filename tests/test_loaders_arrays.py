"""PaddlePaddle .pdparams (written by real paddle, read without it), .npy, and Projector TSV."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

import core
from core.errors import FormatError, UnsafeFileError

if TYPE_CHECKING:
    from tests.conftest import Canary


@pytest.fixture(scope="module")
def paddle_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paddle = pytest.importorskip("paddle")
    d = tmp_path_factory.mktemp("paddle")
    paddle.seed(3)
    emb = paddle.nn.Embedding(50, 16)
    paddle.save(emb.state_dict(), str(d / "emb.pdparams"))

    class Classifier(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = paddle.nn.Embedding(40, 8)
            self.fc = paddle.nn.Linear(8, 3)

    paddle.save(Classifier().state_dict(), str(d / "clf.pdparams"))
    return {"emb": d / "emb.pdparams", "clf": d / "clf.pdparams"}


def test_pdparams_matches_paddle_load(paddle_files: dict[str, Path]) -> None:
    import paddle

    for name, key in (("emb", "weight"), ("clf", "word_embeddings.weight")):
        expected = paddle.load(str(paddle_files[name]))[key]
        expected = expected.numpy() if hasattr(expected, "numpy") else np.asarray(expected)
        m = core.load(paddle_files[name])
        assert m.provenance.format == "pdparams"
        assert m.provenance.tensor == key
        assert np.array_equal(m.vectors, expected)
        assert any("row numbers" in n for n in m.provenance.notes)


def test_pdparams_with_vocab(tmp_path: Path, paddle_files: dict[str, Path]) -> None:
    folder = tmp_path / "withvocab"
    folder.mkdir()
    (folder / "emb.pdparams").write_bytes(paddle_files["emb"].read_bytes())
    words = [f"词{i}" for i in range(50)]
    (folder / "vocab.json").write_text(json.dumps({"idx_to_token": words, "token_to_idx": {w: i for i, w in enumerate(words)}}),
                                       encoding="utf-8")
    m = core.load(folder / "emb.pdparams")
    assert m.get_index("词7") == 7
    assert m.provenance.vocab_source == "vocab.json"
    assert [p.id for p in m.lookup("词3 词4")] == [3, 4]
    m2 = core.load(folder / "emb.pdparams", tensor="weight")
    assert m2.fingerprint == m.fingerprint
    with pytest.raises(FormatError, match="no array named 'nope'"):
        core.load(folder / "emb.pdparams", tensor="nope")


def test_pickle_with_other_globals_is_refused(tmp_path: Path, canary: Canary) -> None:
    p = tmp_path / "evil.pdparams"
    p.write_bytes(pickle.dumps({"weight": np.zeros((2, 2)), "x": canary.payload}))
    with pytest.raises(UnsafeFileError, match=r"evil.pdparams: refused to unpickle global (io|builtins)\.open"):
        core.load(p)
    assert not canary.path.exists()


def test_truncated_pdparams(tmp_path: Path, paddle_files: dict[str, Path]) -> None:
    p = tmp_path / "cut.pdparams"
    p.write_bytes(paddle_files["emb"].read_bytes()[:100])
    with pytest.raises(FormatError, match="cut.pdparams: not a readable .pdparams file"):
        core.load(p)


def test_npy_memory_mapped_with_vocab_txt(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(30, 5)).astype(np.float32)
    np.save(tmp_path / "chinese_word2vec.npy", a)
    (tmp_path / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(30)) + "\n", encoding="utf-8")
    m = core.load(tmp_path / "chinese_word2vec.npy")
    assert np.array_equal(m.vectors, a) and m.get_index("w29") == 29
    assert m.provenance.vocab_source == "vocab.txt"
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(FormatError, match="vocab.txt has 2 tokens but .* has 30 rows"):
        core.load(tmp_path / "chinese_word2vec.npy")
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([[object()]], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match="obj.npy"):
        core.load(obj)


def test_projector_tsv_round_trip(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    rows = demo.vectors[2000:2100]
    tokens = demo.index_to_key[2000:2100]
    one = tmp_path / "one"
    one.mkdir()
    np.savetxt(one / "vectors.tsv", rows, delimiter="\t", fmt="%.9g")
    (one / "metadata.tsv").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    m = core.load(one)
    assert m.index_to_key == tokens
    assert np.array_equal(m.vectors, rows)
    multi = tmp_path / "multi"
    multi.mkdir()
    np.savetxt(multi / "vectors.tsv", rows, delimiter="\t", fmt="%.9g")
    kinds = [demo.kinds[i] for i in range(2000, 2100)]
    (multi / "metadata.tsv").write_text("word\tkind\n" + "".join(f"{t}\t{k}\n" for t, k in zip(tokens, kinds, strict=True)),
                                        encoding="utf-8")
    m2 = core.load(multi / "vectors.tsv")
    assert m2.index_to_key == tokens
    assert m2.metadata_columns == ["word", "kind"]
    assert list(m2.metadata["kind (file)"]) == kinds


def test_projector_tsv_count_mismatch_names_both(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "vectors.tsv", np.ones((10, 3)), delimiter="\t")
    (tmp_path / "metadata.tsv").write_text("\n".join("abcdefghi") + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"metadata.tsv has 9 metadata rows but .*vectors.tsv has 10 vectors"):
        core.load(tmp_path)
    (tmp_path / "metadata.tsv").unlink()
    lines = ["1\t2\t3"] * 10
    lines[4] = "1\t2"
    (tmp_path / "vectors.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"vectors.tsv: line 5: expected 3 tab-separated values"):
        core.load(tmp_path)


def _two_tables_one_vocabulary(folder: Path) -> tuple[Path, Path, Path]:
    """Two seeded tables of MiniLM's size beside a copy of its released vocab.txt (30,522 WordPiece tokens)."""
    vocab = folder / "vocab.txt"
    vocab.write_bytes((core.demo_path() / "vocab.txt").read_bytes())
    rows = len(vocab.read_text(encoding="utf-8").splitlines())
    rng = np.random.default_rng(3)
    for name in ("a.npy", "b.npy"):
        np.save(folder / name, rng.standard_normal((rows, 8), dtype=np.float32))
    return folder / "a.npy", folder / "b.npy", vocab


def test_two_matrices_of_one_vocabulary_share_it(tmp_path: Path) -> None:
    a_path, b_path, vocab = _two_tables_one_vocabulary(tmp_path)
    lines = vocab.read_text(encoding="utf-8").splitlines()  # the oracle: a token's row is its line
    a, b = core.load(a_path, vocab=vocab), core.load(b_path, vocab=vocab)
    assert a.key_to_index is not b.key_to_index and a.vocabulary_digest == b.vocabulary_digest
    b.suggest("helo")  # derived per-token state made before sharing goes with the old copy
    assert b.share_vocabulary(a) and b.share_vocabulary(a)
    assert b.index_to_key is a.index_to_key and b.key_to_index is a.key_to_index
    assert "_plain" not in vars(b)
    for token in ("[CLS]", "hello", "##ing", lines[-1]):
        assert b.get_index(token) == lines.index(token)
    assert [(p.token, p.id) for p in b.lookup("hello world")] == [("hello", lines.index("hello")),
                                                                  ("world", lines.index("world"))]
    assert b.tokenizer._k2i is a.key_to_index  # the word tokenizer looks up in the shared index
    assert "hello" in b.suggest("helo") and np.array_equal(b.get_vector("hello"), np.load(b_path)[lines.index("hello")])


def test_a_different_vocabulary_is_not_shared(tmp_path: Path) -> None:
    a_path, b_path, vocab = _two_tables_one_vocabulary(tmp_path)
    other = tmp_path / "other.txt"
    swapped = vocab.read_text(encoding="utf-8").splitlines()
    swapped[100], swapped[101] = swapped[101], swapped[100]  # same tokens, two rows swapped
    other.write_text("\n".join(swapped) + "\n", encoding="utf-8")
    a, b = core.load(a_path, vocab=vocab), core.load(b_path, vocab=other)
    assert a.vocabulary_digest != b.vocabulary_digest
    assert not b.share_vocabulary(a)
    assert b.key_to_index is not a.key_to_index and b.get_index(swapped[100]) == 100
