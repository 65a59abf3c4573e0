"""A Llama-like checkpoint for the big-matrix test and benches: 128,256 × 2,048 bf16 (by default; any rows × dim)
``model.embed_tokens.weight`` and ``lm_head.weight`` in two safetensors shards, with a tokenizer.json.

``bench_big`` and the slow test use the default width; ``bench_scale`` audits an 8B-sized one (:data:`WIDE_DIM`).
"""

from __future__ import annotations

import json
from pathlib import Path

ROWS, DIM = 128_256, 2_048
#: The width of Llama 3 8B's table, for the audit of issue 17.
WIDE_DIM = 4_096
TENSOR = "model.embed_tokens.weight"


def build(folder: Path, rows: int = ROWS, dim: int = DIM, seed: int = 0) -> Path:
    """Write a ``rows`` × ``dim`` checkpoint into ``folder`` (created) and return it."""
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    emb = (torch.randn(rows, dim, generator=g) * 0.02).to(torch.bfloat16)
    save_file({TENSOR: emb, "model.norm.weight": torch.ones(dim, dtype=torch.bfloat16)},
              str(folder / "model-00001-of-00002.safetensors"))
    del emb
    head = (torch.randn(rows, dim, generator=g) * 0.02).to(torch.bfloat16)
    save_file({"lm_head.weight": head}, str(folder / "model-00002-of-00002.safetensors"))
    del head
    weight_map = {TENSOR: "model-00001-of-00002.safetensors", "model.norm.weight": "model-00001-of-00002.safetensors",
                  "lm_head.weight": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "vocab_size": rows,
                                                    "hidden_size": dim, "tie_word_embeddings": False}))
    vocab = {"<unk>": 0, **{f"tok{i}": i for i in range(1, rows)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(folder / "tokenizer.json"))
    return folder
