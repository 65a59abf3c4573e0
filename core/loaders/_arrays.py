"""Bare arrays with a vocabulary beside them: PaddlePaddle ``.pdparams`` and numpy ``.npy``.

``.npy`` is read and written here (:func:`write_npy`, ``core.export``'s ``npy``); ``.pdparams`` is read only:
it is a pickle, and Embedscope writes no pickle a reader would have to trust.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from core.budget import check_matrix
from core.errors import FormatError, UnsafeFileError
from core.loaders._common import Vocab, row_tokens, source_key, vocab_for
from core.loaders._paddle import load_pdparams
from core.matrix import EmbeddingMatrix, Provenance

_PADDLE_KEYS = (r"^weight$", r"word_embeddings\.weight$", r"embedding.*\.weight$", r"embed.*weight$")


def _float32(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _vocab(folder: Path, rows: int, vocab: str | os.PathLike[str] | None, label: str) -> Vocab:
    """The vocabulary as for every format, with ``vocab="rows"`` meaning row numbers here too."""
    if vocab is not None and os.fspath(vocab) == "rows":
        return Vocab(row_tokens(rows), None, "row numbers", ("tokens are the row numbers (vocab='rows')",))
    return vocab_for(folder, rows, vocab, label)


def _read(vocab: str | os.PathLike[str] | None) -> dict[str, object]:
    """Provenance's record of an explicit vocabulary file: a source too, which exports never overwrite."""
    return {} if vocab is None or os.fspath(vocab) == "rows" else {"read": (os.fspath(vocab),)}


def _choose_key(arrays: dict[str, np.ndarray], tensor: str | None, path: Path) -> str:
    two_d = [k for k, v in arrays.items() if v.ndim == 2]
    if tensor is not None:
        if tensor in arrays:
            return tensor
        raise FormatError(f"{path}: no array named {tensor!r}; 2-D arrays here: {', '.join(two_d[:12]) or 'none'}")
    for pat in _PADDLE_KEYS:
        hits = [k for k in two_d if re.search(pat, k)]
        if hits:
            return min(hits, key=len)
    if len(two_d) == 1:
        return two_d[0]
    raise FormatError(f"{path}: could not tell which array is the embedding; name it with tensor=. "
                      f"2-D arrays: {', '.join(two_d[:12]) or 'none'}")


def load_pdparams_matrix(path: Path, tensor: str | None = None,
                         vocab: str | os.PathLike[str] | None = None) -> EmbeddingMatrix:
    """The embedding in a ``.pdparams`` state dict, read without paddle."""
    arrays = load_pdparams(path)
    key = _choose_key(arrays, tensor, path)
    a = arrays[key]
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
        raise FormatError(f"{path}: array {key!r} is {a.dtype} with shape {list(a.shape)}; expected a 2-D float "
                          "embedding")
    check_matrix(f"{path}: array {key!r}", a.shape, float32_copy=a.dtype != np.float32)
    v = _vocab(path.parent, a.shape[0], vocab, f"array {key!r} in {path}")
    prov = Provenance(format="pdparams", path=str(path), tensor=key, dtype=str(a.dtype),
                      file_bytes=path.stat().st_size, vocab_source=v.source,
                      candidates=tuple(k for k, x in arrays.items() if x.ndim == 2), notes=v.notes,
                      key=source_key([path], "pdparams", key, str(vocab)), extra=_read(vocab))
    return EmbeddingMatrix(_float32(a), v.tokens, tokenizer=v.tokenizer, provenance=prov,
                           unassigned_from=v.unassigned_from)


def _check_npy_header(path: Path) -> None:
    """Read the header alone and refuse, before numpy maps anything, what the data cannot back."""
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _fortran, dtype = reader(f, max_header_size=10_000)
            offset = f.tell()
    except (ValueError, OSError, EOFError, OverflowError, MemoryError, SyntaxError, RecursionError) as err:
        raise FormatError(f"{path}: not a readable .npy file, or truncated ({type(err).__name__}: "
                          f"{str(err)[:200]})") from err
    if dtype.hasobject:
        raise UnsafeFileError(f"{path}: the array holds Python objects, which would need unpickling; refused")
    if len(shape) != 2 or not np.issubdtype(dtype, np.floating):
        raise FormatError(f"{path}: holds {dtype} with shape {list(shape)}; expected a 2-D float matrix")
    check_matrix(path, shape, stored_itemsize=dtype.itemsize, held_bytes=path.stat().st_size - offset,
                 float32_copy=dtype != np.float32)


def load_npy(path: Path, vocab: str | os.PathLike[str] | None = None) -> EmbeddingMatrix:
    """A 2-D ``.npy`` array, memory-mapped, never unpickled."""
    _check_npy_header(path)
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower() or "python objects" in str(err).lower():
            raise UnsafeFileError(f"{path}: the array holds Python objects, which would need unpickling; "
                                  "refused") from err
        raise FormatError(f"{path}: not a readable .npy file ({err})") from err
    except (OSError, EOFError, OverflowError, MemoryError, SyntaxError, RecursionError) as err:
        raise FormatError(f"{path}: not a readable .npy file, or truncated ({type(err).__name__}: "
                          f"{str(err)[:200]})") from err
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
        raise FormatError(f"{path}: holds {a.dtype} with shape {list(a.shape)}; expected a 2-D float matrix")
    v = _vocab(path.parent, a.shape[0], vocab, str(path))
    prov = Provenance(format="npy", path=str(path), dtype=str(a.dtype), file_bytes=path.stat().st_size,
                      vocab_source=v.source, notes=v.notes, key=source_key([path], "npy", str(vocab)),
                      extra=_read(vocab))
    return EmbeddingMatrix(_float32(a), v.tokens, tokenizer=v.tokenizer, provenance=prov,
                           unassigned_from=v.unassigned_from)


def write_npy(folder: Path, vectors: np.ndarray) -> list[str]:
    """``vectors.npy`` in ``folder``: the rows as a C-ordered float32 array, no pickle.

    Returns:
        the file names written.
    """
    np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    return ["vectors.npy"]
