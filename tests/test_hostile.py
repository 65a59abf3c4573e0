"""Hostile and malformed input: every byte string ends in a matrix or one of our errors."""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core._io import safe_upload_name, save_uploads
from core.errors import EmbedscopeError, ParameterError, UnsafeFileError

if TYPE_CHECKING:
    from tests.conftest import Canary

_FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                 derandomize=True)

_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "NaN", "", "x", "0x10", "1_0"]))
_word = st.text(min_size=0, max_size=8).map(lambda s: s.replace("\n", ""))
_line = st.builds(lambda w, nums, sep: w + sep + sep.join(nums), _word, st.lists(_number, max_size=5),
                  st.sampled_from([" ", "\t", "  "]))
_text_file = st.builds(lambda header, lines, eol: (header + eol.join(lines)).encode("utf-8", "surrogatepass"),
                       st.sampled_from(["", "3 2\n", "2 4\n", "0 0\n", "1\n", "a b\n"]), st.lists(_line, max_size=8),
                       st.sampled_from(["\n", "\r\n"]))
_bytes = st.one_of(st.binary(max_size=400), _text_file)


def _load_bytes(data: bytes, name: str, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / name
        p.write_bytes(data)
        try:
            m = core.load(p, format=fmt)
        except EmbedscopeError:
            return
        assert m.vectors.ndim == 2 and len(m.index_to_key) == m.vectors.shape[0]


@_FUZZ
@given(_bytes)
def test_fuzz_word2vec_text(data: bytes) -> None:
    _load_bytes(data, "vectors.txt", "word2vec-text")


@_FUZZ
@given(_bytes)
def test_fuzz_glove(data: bytes) -> None:
    _load_bytes(data, "glove.txt", "glove")


@_FUZZ
@given(_bytes, st.binary(max_size=200))
def test_fuzz_projector_tsv(vectors: bytes, metadata: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vectors.tsv").write_bytes(vectors.replace(b" ", b"\t"))
        (Path(tmp) / "metadata.tsv").write_bytes(metadata)
        with contextlib.suppress(EmbedscopeError):
            core.load(Path(tmp))


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_word2vec_binary(data: bytes) -> None:
    _load_bytes(b"3 2\n" + data, "vectors.bin", "word2vec-binary")


def test_ten_megabyte_line(tmp_path: Path) -> None:
    p = tmp_path / "long.txt"
    p.write_bytes(b"2 3\nok 1 2 3\n" + b"w" + b" 1" * 5_000_000 + b"\n")
    with pytest.raises(EmbedscopeError, match="line 3"):
        core.load(p)


def test_pickle_payload_in_meta_pth(tmp_path: Path, canary: Canary) -> None:
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "consolidated.00.pth").write_bytes(pickle.dumps({"tok_embeddings.weight": canary.payload}))
    with pytest.raises(UnsafeFileError, match="consolidated.00.pth"):
        core.load(folder, vocab="rows")
    assert not canary.path.exists()


@pytest.mark.parametrize("name", ["../../x", "..", ".", "", "a/b", "a\\b", "x\0y"])
def test_upload_names_cannot_traverse(name: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError):
        safe_upload_name(name)
    with pytest.raises(ParameterError):
        save_uploads([(name, b"data")], tmp_path / "uploads")
    assert not (tmp_path / "x").exists()


def test_uploads_land_in_a_new_folder(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    body = "\n".join("\t".join(str(v) for v in row) for row in a).encode()
    folder = save_uploads([("vectors.tsv", body), ("metadata.tsv", b"a\nb\nc\n")], root)
    assert folder.parent == root
    assert core.load(folder).index_to_key == ("a", "b", "c")
    assert save_uploads([("vectors.tsv", body), ("metadata.tsv", b"a\nb\nc\n")], root) == folder


def _truncate_main_file(path: Path) -> Path:
    """Cut the largest file of an export to 60 % of its bytes; returns the path to open."""
    target = max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size) if path.is_dir() else path
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * 0.6)])
    return path


@pytest.mark.parametrize("fmt", ["projector", "word2vec", "word2vec-bin", "safetensors", "npy"])
def test_truncated_files_of_every_format(fmt: str, tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    from core import export

    small = demo.with_vectors(np.asarray(demo.vectors))  # same vocabulary; only 300 rows are written
    out = tmp_path / ("out" if fmt in {"projector", "safetensors", "npy"} else "out.bin")
    export.export(small, out, fmt, rows=np.arange(300))
    with pytest.raises(EmbedscopeError):
        core.load(_truncate_main_file(out))


def test_truncated_pdparams_and_bin(tmp_path: Path) -> None:
    import torch

    (tmp_path / "bin").mkdir()
    torch.save({"model.embed_tokens.weight": torch.ones(50, 8)}, tmp_path / "bin" / "pytorch_model.bin")
    _truncate_main_file(tmp_path / "bin" / "pytorch_model.bin")
    with pytest.raises(EmbedscopeError, match="pytorch_model.bin"):
        core.load(tmp_path / "bin", vocab="rows")
    p = tmp_path / "emb.pdparams"
    p.write_bytes(pickle.dumps({"weight": np.ones((50, 8), dtype=np.float32)}))
    _truncate_main_file(p)
    with pytest.raises(EmbedscopeError, match="emb.pdparams"):
        core.load(p)
