"""The package face of the loaders: :func:`load` detects the format and dispatches.

    >>> m = load("path/to/model")                 # HF folder, file, .pdparams, .npy, word2vec, TSV
    >>> m = load("vectors.txt", limit=50_000)     # first rows of a word2vec/GloVe text file
    >>> m = load("ckpt", tensor="lm_head.weight") # the output embedding of an untied model
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import FormatError
from core.loaders._common import ROW_NUMBERS
from core.loaders._hub import hub_disabled
from core.matrix import EmbeddingMatrix

#: Names accepted by ``format=``.
FORMATS = ("huggingface", "pdparams", "npy", "word2vec-text", "word2vec-binary", "glove", "projector-tsv",
           "gguf", "onnx")

_TORCH_SUFFIXES = {".bin", ".pth", ".pt"}


class UnknownFormatError(FormatError):
    """Detection found no format it knows; the message says how to name one in the caller's own terms.

    Attributes:
        path: the file that was not recognised.
    """

    def __init__(self, path: Path, how: str = "pass format=NAME") -> None:
        self.path = path
        super().__init__(f"{path}: not a format we know (safetensors, torch .bin/.pth, .pdparams, .npy, "
                         f"word2vec text/binary, GloVe, Projector TSV); {how} to say which, NAME one of "
                         f"{', '.join(FORMATS)}")

    def advise(self, how: str) -> UnknownFormatError:
        """The same error, telling how another face names the format (``"pass --format NAME"``)."""
        return UnknownFormatError(self.path, how)


def detect(path: Path) -> str:
    """The format of a local file or folder (one of :data:`FORMATS`).

    Raises:
        UnknownFormatError: a file in no format we know.
        FormatError: nothing we can read is there.
    """
    from core.loaders import _word2vec

    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if (names & {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json"}
                or any(n.endswith(".safetensors") or (n.startswith("consolidated") and n.endswith(".pth"))
                       for n in names)):
            return "huggingface"
        if "vectors.tsv" in names:
            return "projector-tsv"
        onnx_files = [n for n in names if n.endswith(".onnx")]
        if "model.onnx" in names or len(onnx_files) == 1:
            return "onnx"
        for suffix, fmt in ((".pdparams", "pdparams"), (".npy", "npy")):
            hits = [n for n in names if n.endswith(suffix)]
            if len(hits) == 1:
                return fmt
        raise FormatError(f"{path}: found no embedding files (model.safetensors, pytorch_model.bin, "
                          "consolidated.00.pth, *.pdparams, *.npy, vectors.tsv); open a file directly")
    suffix = path.suffix.lower()
    if suffix == ".safetensors" or path.name.endswith(".index.json"):
        return "huggingface"
    if suffix == ".pdparams":
        return "pdparams"
    if suffix == ".npy":
        return "npy"
    if suffix == ".gguf":
        return "gguf"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".tsv":
        return "projector-tsv"
    if path.stat().st_size == 0:
        raise FormatError(f"{path}: the file is empty")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return "gguf"
    if suffix in _TORCH_SUFFIXES and (magic.startswith(b"PK") or magic[:1] == b"\x80"):
        return "huggingface"
    kind = _word2vec.sniff(path)
    if kind is not None:
        return kind
    raise UnknownFormatError(path)


def resolve(source: str | os.PathLike[str]) -> Path:
    """A local path for ``source``: the path itself, or a hub id downloaded to the local cache.

    Raises:
        FormatError: no such path and not a hub id.
        OfflineError: a hub id that cannot be downloaded.
    """
    from core.loaders import _hub

    path = Path(source).expanduser()
    if path.exists():
        return path
    if str(source) == "demo":
        from core import demo_path

        return demo_path()
    if isinstance(source, str) and _hub.looks_like_hub_id(source):
        return _hub.download(source)
    raise FormatError(f"{source}: no such file or folder (and not a Hugging Face hub id like 'org/name')")


def load(
    source: str | os.PathLike[str],
    *,
    tensor: str | None = None,
    vocab: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    format: str | None = None,
    output: bool = False,
) -> EmbeddingMatrix:
    """Open an embedding matrix from a file, a folder, or a Hugging Face hub id.

    Args:
        source: ``"demo"`` (the bundled MiniLM), a model folder or weights file, a ``.pdparams`` or
            ``.npy`` file, a word2vec/GloVe file, a
            Projector ``vectors.tsv`` (or a folder holding one), or a hub id such as ``org/name``.
        tensor: the tensor or key to read (default: the input embedding, found by name and config).
        vocab: a vocabulary file or tokenizer folder to use instead of the one beside the weights;
            ``"rows"`` uses row numbers; for Projector TSV, the metadata file.
        limit: read only the first rows (word2vec and GloVe files).
        format: skip detection (one of :data:`FORMATS`).
        output: the output embedding (``lm_head.weight``, GGUF's ``output.weight``) instead of the input one;
            a model that ties them gives its input table, and the provenance says it is tied.

    Raises:
        FormatError: the file is malformed or not a format we know; the message names file and line/tensor.
        UnsafeFileError: the file asks to run code.
        OfflineError: a hub id could not be downloaded.
    """
    from core.loaders import _arrays, _hf, _tsv, _word2vec

    if limit is not None and limit < 1:
        raise FormatError(f"limit={limit}: must be at least 1")
    from core import access

    access.check_path_text(source)
    path = resolve(source)
    access.guard_source(path, vocab)  # one check for every source kind, when a server confines us
    fmt = format or detect(path)
    if fmt not in FORMATS:
        raise FormatError(f"format={fmt!r}: must be one of {', '.join(FORMATS)}")
    if output and fmt not in ("huggingface", "gguf"):
        raise FormatError(f"{path}: a {fmt} file holds one table; the output embedding (output=True, "
                          "--output-embedding) is read from Hugging Face checkpoints and GGUF files; name another "
                          "table with tensor= (--tensor)")
    if fmt == "huggingface":
        return _hf.load_hf(path, tensor=tensor, vocab=vocab, output=output)
    if fmt == "gguf":
        from core.loaders._gguf import load_gguf

        return load_gguf(path, tensor=tensor, vocab=vocab, output=output)
    if fmt == "onnx":
        from core.loaders._onnx import load_onnx

        return load_onnx(path / "model.onnx" if (path / "model.onnx").is_file() else path, tensor=tensor,
                         vocab=vocab)
    if fmt == "pdparams":
        if path.is_dir():
            path = next(p for p in sorted(path.iterdir()) if p.suffix == ".pdparams")
        return _arrays.load_pdparams_matrix(path, tensor=tensor, vocab=vocab)
    if fmt == "npy":
        if path.is_dir():
            path = next(p for p in sorted(path.iterdir()) if p.suffix == ".npy")
        return _arrays.load_npy(path, vocab=vocab)
    if fmt == "projector-tsv":
        return _tsv.load_tsv(path, metadata=vocab)
    if fmt == "word2vec-binary":
        return _word2vec.load_binary(path, limit=limit)
    return _word2vec.load_text(path, limit=limit, fmt=fmt)


__all__ = ["FORMATS", "ROW_NUMBERS", "UnknownFormatError", "detect", "hub_disabled", "load", "resolve"]
