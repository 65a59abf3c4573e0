"""Hugging Face (and Meta-style) checkpoints: find the input-embedding tensor, read only that.

The model is never built and no code from the folder is run: ``config.json`` is read as data,
``auto_map`` and custom architectures are ignored, and the tokenizer comes from local files only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.budget import check_matrix
from core.errors import FormatError
from core.loaders import _safetensors as st
from core.loaders import _torch
from core.loaders._common import Vocab, row_vocab, source_key, total_bytes, vocab_for, vocab_from_tokenizer
from core.matrix import EmbeddingMatrix, Provenance
from core.tokens import HFTokenizer

#: Input-embedding names, most specific first; a tensor matches a name exactly or as a dotted suffix.
INPUT_NAMES = (
    "embeddings.word_embeddings.weight", "model.embed_tokens.weight", "transformer.wte.weight",
    "gpt_neox.embed_in.weight", "transformer.word_embeddings.weight",
    "transformer.embedding.word_embeddings.weight", "model.decoder.embed_tokens.weight",
    "encoder.embed_tokens.weight", "shared.weight", "tok_embeddings.weight", "embed_tokens.weight",
    "word_embeddings.weight", "wte.weight", "embed_in.weight",
)
#: Output-embedding (unembedding) names, selectable with ``tensor=`` when untied.
OUTPUT_NAMES = ("lm_head.weight", "output.weight", "embed_out.weight", "cls.predictions.decoder.weight")


@dataclass(frozen=True)
class _Entry:
    name: str
    shape: tuple[int, ...]
    dtype: str
    read: Callable[[], np.ndarray]
    file: Path


def _matches(name: str, known: str) -> bool:
    return name == known or name.endswith("." + known)


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise FormatError(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise FormatError(f"{path}: JSON nested too deeply to read; not a config or index file") from err
    if not isinstance(data, dict):
        raise FormatError(f"{path}: expected a JSON object")
    return data


def _shard_name(name: object, index: Path) -> str:
    """A shard named in an index: a plain file name beside it, never a path that could leave the folder."""
    text = str(name)
    if (not isinstance(name, str) or not text or text in {".", ".."} or "/" in text or "\\" in text
            or "\0" in text or Path(text).is_absolute()):
        raise FormatError(f"{index}: weight_map names the shard {text[:200]!r}; shards must be plain file names "
                          "in the index's folder")
    return text


def _weight_files(path: Path) -> tuple[Path, list[Path], str]:
    """(folder, weight files, format) for a model folder or one of its files."""
    if path.is_file():
        folder = path.parent
        name = path.name
        if name.endswith(".index.json"):
            index = _read_json(path)
            wm = index.get("weight_map")
            if not isinstance(wm, dict):
                raise FormatError(f"{path}: has no weight_map; expected a sharded-checkpoint index")
            files = sorted({folder / _shard_name(f, path) for f in wm.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise FormatError(f"{path}: names shards that are missing: {', '.join(missing[:5])}")
            fmt = "safetensors-sharded" if name.startswith("model.safetensors") else "pytorch-bin"
            return folder, files, fmt
        if path.suffix == ".safetensors":
            return folder, [path], "safetensors"
        if path.name.startswith("consolidated") and path.suffix == ".pth":
            return folder, [path], "meta-pth"
        return folder, [path], "pytorch-bin"
    folder = path
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index_name).is_file():
            return _weight_files(folder / index_name)
    if (folder / "model.safetensors").is_file():
        return folder, [folder / "model.safetensors"], "safetensors"
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        return folder, shards, "safetensors" if len(shards) == 1 else "safetensors-sharded"
    if (folder / "pytorch_model.bin").is_file():
        return folder, [folder / "pytorch_model.bin"], "pytorch-bin"
    meta = sorted(folder.glob("consolidated.*.pth"))
    if meta:
        return folder, meta, "meta-pth"
    raise FormatError(f"{folder}: no weights found (model.safetensors, *.safetensors with an index, "
                      "pytorch_model.bin or consolidated.00.pth)")


def _table(files: list[Path], fmt: str) -> dict[str, _Entry]:
    table: dict[str, _Entry] = {}
    if fmt.startswith("safetensors"):
        for f in files:
            for name, info in st.read_header(f).items():
                table[name] = _Entry(name, info.shape, info.numpy_dtype,
                                     partial(st.read_tensor, info), f)
        return table
    for f in files[:1] if fmt != "meta-pth" else files:
        sd = _torch.load_state_dict(f)
        for name, t in sd.items():
            key = name if fmt != "meta-pth" or len(files) == 1 else f"{name}@{f.name}"
            table[key] = _Entry(key, _torch.shape_of(t), _torch.dtype_name(t),
                                partial(_torch.to_float32, t, f, name), f)
    if fmt == "pytorch-bin" and len(files) > 1:
        for f in files[1:]:
            for name, t in _torch.load_state_dict(f).items():
                table[name] = _Entry(name, _torch.shape_of(t), _torch.dtype_name(t),
                                     partial(_torch.to_float32, t, f, name), f)
    return table


def _concat(parts: list[_Entry], axis: int) -> np.ndarray:
    return np.concatenate([p.read() for p in parts], axis=axis)


def _merge_meta_shards(table: dict[str, _Entry], files: list[Path]) -> dict[str, _Entry]:
    """Meta model-parallel shards split tok_embeddings by columns and output by rows: join them."""
    if len(files) == 1:
        return table
    joined: dict[str, _Entry] = {}
    for base, axis in (("tok_embeddings.weight", 1), ("output.weight", 0)):
        parts = [table[f"{base}@{f.name}"] for f in files if f"{base}@{f.name}" in table]
        if len(parts) != len(files):
            continue
        shape = list(parts[0].shape)
        shape[axis] = sum(p.shape[axis] for p in parts)
        joined[base] = _Entry(base, tuple(shape), parts[0].dtype,
                              partial(_concat, parts, axis),
                              files[0])
    return joined or table


def _vocab_size(config: dict[str, object]) -> int | None:
    for cfg in (config, config.get("text_config")):
        if isinstance(cfg, dict) and isinstance(cfg.get("vocab_size"), int) and cfg["vocab_size"] > 0:
            return int(cfg["vocab_size"])
    return None


def _choose(table: dict[str, _Entry], tensor: str | None, vocab_size: int | None,
            where: Path) -> _Entry:
    two_d = {n: e for n, e in table.items() if len(e.shape) == 2}
    if tensor is not None:
        if tensor in table:
            return table[tensor]
        hits = [n for n in two_d if _matches(n, tensor)]
        if len(hits) == 1:
            return table[hits[0]]
        raise FormatError(f"{where}: no tensor named {tensor!r}; 2-D tensors here: "
                          f"{', '.join(sorted(two_d)[:12]) or 'none'}")
    for known in INPUT_NAMES:
        hits = sorted(n for n in two_d if _matches(n, known))
        if hits:
            return two_d[min(hits, key=len)]
    if vocab_size:
        hits = sorted(n for n, e in two_d.items() if e.shape[0] == vocab_size and
                      not any(_matches(n, o) for o in OUTPUT_NAMES))
        if hits:
            return two_d[hits[0]]
    raise FormatError(f"{where}: could not find the input-embedding tensor (none of the known names, and no "
                      f"2-D tensor with {vocab_size or '?'} rows); name it with tensor=. 2-D tensors: "
                      f"{', '.join(sorted(two_d)[:12]) or 'none'}")


def candidates(table: dict[str, _Entry], vocab_size: int | None) -> tuple[str, ...]:
    """Tensors that look like input or output embeddings."""
    out = [n for n, e in table.items() if len(e.shape) == 2 and (
        any(_matches(n, k) for k in INPUT_NAMES + OUTPUT_NAMES) or (vocab_size and e.shape[0] == vocab_size))]
    return tuple(sorted(out))


def load_hf(path: Path, tensor: str | None = None, vocab: str | os.PathLike[str] | None = None,
            output: bool = False) -> EmbeddingMatrix:
    """Open the embedding matrix of a Hugging Face or Meta checkpoint (folder or file); with ``output``, its
    output embedding (the input table when the model ties them)."""
    folder, files, fmt = _weight_files(path)
    config: dict[str, object] = {}
    notes: list[str] = []
    for cfg_name in ("config.json", "params.json"):
        if (folder / cfg_name).is_file():
            config = _read_json(folder / cfg_name)
            break
    if "auto_map" in config or config.get("trust_remote_code"):
        notes.append("config.json asks for remote code (auto_map); Embedscope reads weights as data and "
                     "never runs it")
    table = _table(files, fmt)
    if fmt == "meta-pth":
        table = _merge_meta_shards(table, files)
    vsize = _vocab_size(config)
    if output and tensor is None:
        outs = sorted(n for n, e in table.items() if len(e.shape) == 2 and any(_matches(n, o) for o in OUTPUT_NAMES))
        if outs:
            tensor = min(outs, key=len)
        elif config.get("tie_word_embeddings") is False:
            raise FormatError(f"{path}: config.json says the embeddings are untied but no output tensor "
                              f"({', '.join(OUTPUT_NAMES)}) is in the checkpoint; name it with tensor=")
        else:
            notes.append("no output tensor in the checkpoint: the output embedding is tied to the input table")
    entry = _choose(table, tensor, vsize, path)
    if len(entry.shape) != 2:
        raise FormatError(f"{entry.file}: tensor {entry.name!r} has shape {list(entry.shape)}; an embedding "
                          "matrix is 2-D")
    check_matrix(f"{entry.file}: tensor {entry.name!r}", entry.shape, float32_copy=entry.dtype != "float32")
    vectors = entry.read()
    rows = vectors.shape[0]
    has_output = any(_matches(n, o) for n in table for o in OUTPUT_NAMES)
    tie_cfg = config.get("tie_word_embeddings")
    archs = config.get("architectures")
    generates = isinstance(archs, list) and any(str(a).endswith(("ForCausalLM", "LMHeadModel", "ForMaskedLM"))
                                                for a in archs)
    # Without the flag: an output tensor means untied; a generating model without one reuses its input rows.
    tied = tie_cfg if isinstance(tie_cfg, bool) else (False if has_output else (True if generates else None))
    v = _vocab(folder, rows, vocab, entry)
    key_paths = [*files, *(p for p in (folder / "tokenizer.json", folder / "vocab.txt") if p.is_file())]
    prov = Provenance(
        format=fmt, path=str(entry.file if len(files) == 1 else folder), tensor=entry.name,
        dtype=entry.dtype, file_bytes=total_bytes(files), vocab_source=v.source, tied=tied,
        candidates=candidates(table, vsize), notes=tuple(notes) + v.notes,
        key=source_key(key_paths, "hf", entry.name, str(vocab)),
        extra={} if vocab is None or os.fspath(vocab) == "rows" else {"read": (os.fspath(vocab),)},
    )
    return EmbeddingMatrix(vectors, v.tokens, tokenizer=v.tokenizer, provenance=prov,
                           unassigned_from=v.unassigned_from)


def _vocab(folder: Path, rows: int, vocab: str | os.PathLike[str] | None, entry: _Entry) -> Vocab:
    label = f"tensor {entry.name!r} in {entry.file}"
    if vocab == "rows":
        return row_vocab(rows, "tokens are the row numbers (vocab='rows')")
    if vocab is not None:
        return vocab_for(folder, rows, vocab, label)
    tok = HFTokenizer.from_folder(folder)
    if tok is not None:
        return vocab_from_tokenizer(tok, rows)
    if (folder / "tokenizer.model").is_file():
        from core.loaders._sentencepiece import sentencepiece_vocab

        return sentencepiece_vocab(folder / "tokenizer.model", rows)
    if (folder / "vocab.json").is_file():  # a plain vocabulary (no merges.txt): e.g. our safetensors export
        return vocab_for(folder, rows, folder / "vocab.json", label)
    # As for .npy and .pdparams: open it, and say that the tokens are row numbers.
    return row_vocab(rows, "no tokenizer files (tokenizer.json, vocab.txt, vocab.json, tokenizer.model) were "
                           "found beside the weights, so tokens are the row numbers; pass vocab= to name one")
