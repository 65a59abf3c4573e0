"""Opening matrices (issue 2): MiniLM against transformers and the raw safetensors read; word2vec
text and binary (MiniLM exported by gensim) against gensim's loader."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import core
from bench._harness import Result, best_of

TENSOR = "embeddings.word_embeddings.weight"


def run() -> list[Result]:
    from gensim.models import KeyedVectors
    from safetensors import safe_open
    from transformers import AutoModel

    folder = core.demo_path()
    weights = folder / "model.safetensors"

    def ours_open() -> None:
        core.load(folder)

    def ours_open_read() -> None:
        m = core.load(folder)
        float(m.norms.sum())  # touches every value

    def raw() -> None:
        with safe_open(str(weights), framework="np") as f:
            float(np.asarray(f.get_tensor(TENSOR)).sum())

    def hf() -> None:
        AutoModel.from_pretrained(str(folder), local_files_only=True).get_input_embeddings()

    t_open, t_read = best_of(ours_open, 5), best_of(ours_open_read, 5)
    t_hf_first = best_of(hf, 1)  # the first call in this process, as a user's script pays it
    t_raw, t_hf = best_of(raw, 5), best_of(hf, 3)
    results = [
        Result("open", "open MiniLM (30522×384) with tokenizer", t_open, "AutoModel, first call in process",
               t_hf_first, "≥ 30×"),
        Result("open", "open MiniLM (30522×384) with tokenizer", t_open, "AutoModel, repeated (warm)", t_hf,
               "≥ 30×", "transformers 5 memory-maps weights once its code is imported"),
        Result("open", "open MiniLM + read every value (row norms)", t_read, "raw safe_open get_tensor + sum",
               t_raw, "≥ 0.5× (within 2×)"),
    ]
    m = core.load(folder)
    kv = KeyedVectors(m.dim)
    kv.add_vectors(list(m.index_to_key), np.asarray(m.vectors))
    with tempfile.TemporaryDirectory() as tmp:
        text, binary = Path(tmp) / "minilm.txt", Path(tmp) / "minilm.bin"
        kv.save_word2vec_format(str(text))
        kv.save_word2vec_format(str(binary), binary=True)
        t_ours = best_of(lambda: core.load(text), 3)
        t_gensim = best_of(lambda: KeyedVectors.load_word2vec_format(str(text)), 2)
        results.append(Result("open", "word2vec text 30522×384", t_ours, "gensim load_word2vec_format", t_gensim,
                              "≥ 4×"))
        t_ours = best_of(lambda: core.load(binary), 5)
        t_gensim = best_of(lambda: KeyedVectors.load_word2vec_format(str(binary), binary=True), 5)
        results.append(Result("open", "word2vec binary 30522×384", t_ours, "gensim load_word2vec_format", t_gensim,
                              "≥ 1×"))
    return results
