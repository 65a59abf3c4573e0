"""ONNX models: the token embedding among the initializers, float or dynamically quantised.

Read with the ``onnx`` package (a protobuf parse; nothing in the graph is run, and onnxruntime is not needed).
The table is the initializer that feeds the first ``Gather`` on the graph's token-id input, followed through a
``DequantizeLinear`` where the exporter quantised it (onnxruntime's ``quantize_dynamic`` writes
``*_quantized`` + ``*_scale`` + ``*_zero_point``); failing that, a 2-D float initializer whose name says it is
an embedding, or a ``*_q`` table with a per-row ``*_scale``. External data is read only from plain file names in
the model's own folder. Tokenizer files are taken from beside the model, as for a Hugging Face folder.

Read only: we never write ONNX. It is a computation graph a runtime executes, and a table of vectors does
not make one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from core import access
from core.budget import check_matrix
from core.errors import FormatError
from core.loaders._common import source_key, total_bytes, vocab_for
from core.matrix import EmbeddingMatrix, Provenance

_NAME_HINT = re.compile(r"(embed|wte|word|tok)", re.IGNORECASE)
_IDS_HINT = re.compile(r"(input_ids|ids|tokens?)$", re.IGNORECASE)


def _external_files(path: Path, model: Any) -> list[Path]:
    """The external data files the initializers name, each checked to be a plain name beside the model."""
    from onnx import TensorProto

    files: set[Path] = set()
    for init in model.graph.initializer:
        if init.data_location != TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in init.external_data if e.key == "location"), "")
        if not location or Path(location).name != location or location in (".", ".."):
            raise FormatError(f"{path}: initializer {init.name!r} keeps its data at {location!r}; external data "
                              "must be a plain file name in the model's folder")
        target = access.guard(path.parent / location)
        if not target.is_file():
            raise FormatError(f"{path}: initializer {init.name!r} keeps its data in {location}, which is not in "
                              f"{path.parent}; copy the data file beside the model")
        files.add(target)
    return sorted(files)


def _array(path: Path, init: Any) -> np.ndarray:
    from onnx import numpy_helper

    dims = tuple(int(d) for d in init.dims)
    if len(dims) == 2:
        check_matrix(f"{path}: initializer {init.name!r}", dims)
    elif any(d < 0 for d in dims) or (dims and int(np.prod(dims, dtype=object)) > (1 << 31)):
        raise FormatError(f"{path}: initializer {init.name!r} declares shape {dims}")
    try:
        return np.asarray(numpy_helper.to_array(init, base_dir=str(path.parent)))
    except (ValueError, OSError, TypeError) as err:
        raise FormatError(f"{path}: initializer {init.name!r} cannot be read ({err})") from err


def _dequantise(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    zp = np.zeros((), dtype=np.float32) if zero is None else zero.astype(np.float32)
    sc = scale.astype(np.float32)
    if sc.ndim == 1 and sc.size > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = sc.size
        sc = sc.reshape(shape)
        zp = zp.reshape(shape) if zp.size > 1 else zp
    out = (q.astype(np.float32) - zp) * sc
    return np.ascontiguousarray(out, dtype=np.float32)


def _find_table(path: Path, model: Any, inits: dict[str, Any]) -> tuple[str, np.ndarray, str, str]:
    """(initializer name, float32 rows, stored dtype, how it was found)."""
    from onnx import helper

    graph = model.graph
    int_inputs = [i.name for i in graph.input if i.type.tensor_type.elem_type in (6, 7)]  # int32, int64
    ids_inputs = [n for n in int_inputs if _IDS_HINT.search(n)] or int_inputs[:1]
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def dequant_of(node: Any) -> tuple[np.ndarray, str]:
        q = _array(path, inits[node.input[0]])
        scale = _array(path, inits[node.input[1]])
        zero = _array(path, inits[node.input[2]]) if len(node.input) > 2 and node.input[2] in inits else None
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        return _dequantise(q, scale, zero, int(axis)), str(q.dtype)

    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[1] not in ids_inputs:
            continue
        src = node.input[0]
        if src in inits:
            arr = _array(path, inits[src])
            after = [c for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
            if after and after[0].input[1] in inits:  # gathered rows are dequantised after the lookup
                q_node = after[0]
                scale = _array(path, inits[q_node.input[1]])
                zero = _array(path, inits[q_node.input[2]]) if len(q_node.input) > 2 and q_node.input[2] in inits \
                    else None
                axis = next((helper.get_attribute_value(a) for a in q_node.attribute if a.name == "axis"), 1)
                return src, _dequantise(arr, scale, zero, int(axis)), str(arr.dtype), "Gather + DequantizeLinear"
            return src, arr, str(arr.dtype), "Gather on the token ids"
        prod = producers.get(src)
        if prod is not None and prod.op_type == "DequantizeLinear" and prod.input[0] in inits:
            arr, stored = dequant_of(prod)
            return prod.input[0], arr, stored, "DequantizeLinear feeding the Gather"
    # By name and shape: a float table, or an integer table with a per-row scale.
    for name, init in inits.items():
        if len(init.dims) == 2 and init.data_type in (1, 10, 11, 16) and _NAME_HINT.search(name):
            arr = _array(path, init)
            return name, arr, str(arr.dtype), "name and shape"
    for name, init in inits.items():
        base = name[:-2] if name.endswith("_q") else None
        if base and len(init.dims) == 2 and f"{base}_scale" in inits:
            q = _array(path, init)
            scale = _array(path, inits[f"{base}_scale"]).reshape(-1)
            if scale.size == q.shape[0]:
                return name, _dequantise(q, scale, None, 0), str(q.dtype), "per-row scaled table"
    seen = [f"{n} {tuple(int(d) for d in i.dims)}" for n, i in inits.items() if len(i.dims) == 2][:12]
    raise FormatError(f"{path}: no token embedding among the initializers (no Gather on "
                      f"{', '.join(ids_inputs) or 'an integer input'}, no 2-D table named like an embedding); "
                      f"2-D initializers seen: {', '.join(seen) or 'none'}; pass tensor= to name one")


def load_onnx(path: Path, *, tensor: str | None = None,
              vocab: str | os.PathLike[str] | None = None) -> EmbeddingMatrix:
    """The token embedding of an ONNX model (``model.onnx`` or a folder holding one), with the tokenizer beside it.

    Raises:
        FormatError: not an ONNX model, missing external data, or no embedding-like initializer (the message
            lists the candidates).
    """
    import onnx

    if path.is_dir():
        hits = sorted(p for p in path.iterdir() if p.suffix == ".onnx")
        if not hits:
            raise FormatError(f"{path}: no .onnx file in the folder")
        path = hits[0]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends have no common base we can name
        raise FormatError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from err
    files = [path, *_external_files(path, model)]
    inits = {i.name: i for i in model.graph.initializer}
    if tensor is not None:
        if tensor not in inits:
            raise FormatError(f"{path}: no initializer {tensor!r}")
        arr = _array(path, inits[tensor])
        name, vectors, stored, how = tensor, arr, str(arr.dtype), "named"
    else:
        name, vectors, stored, how = _find_table(path, model, inits)
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise FormatError(f"{path}: initializer {name!r} is {vectors.dtype} of shape {vectors.shape}; an embedding "
                          "table is a 2-D float array")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    rows = vectors.shape[0]
    v = vocab_for(path.parent, rows, vocab, f"initializer {name!r} in {path}")
    prov = Provenance(
        format="onnx", path=str(path), tensor=name, dtype=stored, file_bytes=total_bytes(files),
        vocab_source=v.source, notes=(f"table found by {how}", *v.notes),
        candidates=tuple(n for n, i in inits.items() if len(i.dims) == 2 and n != name)[:12],
        key=source_key(files, "onnx", name, str(vocab)),
    )
    return EmbeddingMatrix(vectors, v.tokens, tokenizer=v.tokenizer, provenance=prov,
                           unassigned_from=v.unassigned_from)
