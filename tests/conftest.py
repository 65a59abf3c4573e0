"""Shared fixtures: the real MiniLM model from PyPI, and gensim-written exports of it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import core

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


class _OpensFile:
    """Pickles to the call ``open(path, "w")``: the file appears only if an unpickler runs code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@dataclass(frozen=True)
class Canary:
    """A hostile pickle payload and the file it would create: ``assert not canary.path.exists()``."""

    path: Path
    payload: object


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    path = tmp_path / "canary"
    return Canary(path, _OpensFile(path))


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return core.demo_path()


@pytest.fixture(scope="session")
def demo(demo_dir: Path) -> core.EmbeddingMatrix:
    return core.load(demo_dir)


@pytest.fixture(scope="session")
def demo_weights(demo: core.EmbeddingMatrix) -> np.ndarray:
    """MiniLM's word embeddings, read by the safetensors library itself (an independent reader)."""
    from safetensors.numpy import load_file

    return load_file(str(core.demo_path() / "model.safetensors"))["embeddings.word_embeddings.weight"]


@pytest.fixture(scope="session")
def minilm_w2v(tmp_path_factory: pytest.TempPathFactory, demo_weights: np.ndarray,
               demo: core.EmbeddingMatrix) -> dict[str, Path]:
    """MiniLM exported by gensim as word2vec text, binary and GloVe (no header)."""
    from gensim.models import KeyedVectors

    d = tmp_path_factory.mktemp("minilm_w2v")
    kv = KeyedVectors(demo_weights.shape[1])
    kv.add_vectors(list(demo.index_to_key), demo_weights)
    out = {"text": d / "minilm.txt", "binary": d / "minilm.bin", "glove": d / "minilm.glove.txt"}
    kv.save_word2vec_format(str(out["text"]))
    kv.save_word2vec_format(str(out["binary"]), binary=True)
    kv.save_word2vec_format(str(out["glove"]), write_header=False)
    return out


@pytest.fixture(scope="session")
def lee_corpus() -> Path:
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))


@pytest.fixture(scope="session")
def lee_model(lee_corpus: Path):  # type: ignore[no-untyped-def]
    """A small word2vec model that gensim trains on its own lee_background corpus (seeded, 1 worker)."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    return Word2Vec(LineSentence(str(lee_corpus)), vector_size=50, window=5, min_count=3, epochs=5, seed=7,
                    workers=1)
