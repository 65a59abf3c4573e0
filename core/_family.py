"""Which kind of model a matrix comes from: static word vectors, an encoder, or a decoder language model.

Some audit checks rest on a premise that holds for one kind of model and not another (frequent words get
larger norms in word2vec and in BERT-style encoders, not in decoder LLMs), so the audit asks this first.

    >>> import core
    >>> model_family(core.load("demo"))
    ('encoder', 'config.json: architectures BertModel, model_type bert')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.matrix import EmbeddingMatrix

FAMILIES = ("static", "encoder", "decoder", "unknown")

#: Formats that hold static word vectors (word2vec, GloVe, fastText's .vec).
STATIC_FORMATS = ("word2vec-text", "word2vec-binary", "glove")

# model_type values of Hugging Face configs, by how the model was trained.
_ENCODERS = frozenset({
    "albert", "bert", "big_bird", "camembert", "convbert", "data2vec-text", "deberta", "deberta-v2", "distilbert",
    "electra", "ernie", "esm", "flaubert", "funnel", "ibert", "layoutlm", "longformer", "luke", "megatron-bert",
    "mobilebert", "modernbert", "mpnet", "nezha", "nomic_bert", "rembert", "roberta", "roformer", "squeezebert",
    "xlm", "xlm-roberta", "xlm-roberta-xl", "xmod",
})
_DECODERS = frozenset({
    "baichuan", "bloom", "chatglm", "codegen", "cohere", "cohere2", "deepseek_v2", "deepseek_v3", "falcon", "gemma",
    "gemma2", "gemma3", "gemma3_text", "gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "granite", "internlm2",
    "llama", "mistral", "mixtral", "mpt", "olmo", "olmo2", "opt", "phi", "phi3", "qwen2", "qwen2_moe", "qwen3",
    "qwen3_moe", "smollm3", "stablelm", "starcoder2",
})


def _config(m: EmbeddingMatrix) -> Mapping[str, Any] | None:
    if not m.provenance.path:
        return None
    p = Path(m.provenance.path)
    folder = p if p.is_dir() else p.parent
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return cfg if isinstance(cfg, Mapping) else None


def family_of_config(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """The family a Hugging Face ``config.json`` describes, and the keys that say so."""
    archs = [a for a in cfg.get("architectures") or [] if isinstance(a, str)]
    types = [t for t in (cfg.get("model_type"), (cfg.get("text_config") or {}).get("model_type")
                         if isinstance(cfg.get("text_config"), Mapping) else None) if isinstance(t, str)]
    said = "config.json: " + ", ".join(
        ([f"architectures {', '.join(archs)}"] if archs else []) + ([f"model_type {types[0]}"] if types else []))
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or any(t in _DECODERS for t in types):
        return "decoder", said
    if any(a.endswith("ForMaskedLM") for a in archs) or any(t in _ENCODERS for t in types):
        return "encoder", said
    return "unknown", said if archs or types else "config.json names no architecture or model_type"


def model_family(m: EmbeddingMatrix) -> tuple[str, str]:
    """``(family, evidence)``: one of :data:`FAMILIES`, and where that came from, in words."""
    fmt = m.provenance.format
    if fmt in STATIC_FORMATS:
        return "static", f"a {fmt} file"
    cfg = _config(m)
    if cfg is None:
        return "unknown", "no config.json beside the weights"
    return family_of_config(cfg)


__all__ = ["FAMILIES", "STATIC_FORMATS", "family_of_config", "model_family"]
