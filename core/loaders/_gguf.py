"""GGUF files (llama.cpp, Ollama, LM Studio): the token table and the tokenizer stored in the file.

The header is parsed by :mod:`core.loaders._gguf_header` (fast, bounds-checked, memory-mapped); the tensor types
and their dequantisation are the ``gguf`` package's, llama.cpp's own. Only the table asked for is dequantised,
in row chunks, so a 262k-row Q4_K table never exists twice in float32. The vocabulary and
the tokenizer come from the file's metadata:

- ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE): a ``tokenizers`` BPE built from ``tokens`` and
  ``merges``, split the way llama.cpp splits for the file's ``tokenizer.ggml.pre`` (llama3, qwen2, smollm, …).
- ``tokenizer.ggml.model == "llama"`` (SentencePiece): a SentencePiece model rebuilt from ``tokens``,
  ``scores`` and ``token_type``.
- ``tokenizer.ggml.model == "bert"`` (WordPiece): lower-cased WordPiece over ``tokens``.

Token types (normal, control, user-defined, unused, byte) travel as the metadata column ``gguf_type``;
control and user-defined tokens are the tokenizer's special tokens. Nothing in the file is executed.

Read only: we never write GGUF. A GGUF file is a whole model for a runtime (architecture metadata, every
tensor, the tokenizer), not a table of vectors; writing one belongs to llama.cpp's converters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.budget import check_matrix
from core.errors import FormatError
from core.loaders._common import source_key, vocab_from_tokenizer
from core.loaders._gguf_header import GGUFFile, TensorEntry, read_gguf_header
from core.matrix import EmbeddingMatrix, Provenance
from core.tokens import HFTokenizer, Tokenizer

INPUT_TENSOR = "token_embd.weight"
OUTPUT_TENSOR = "output.weight"
#: llama.cpp's token types (the same numbers as SentencePiece's piece types).
TOKEN_TYPES = {0: "undefined", 1: "normal", 2: "unknown", 3: "control", 4: "user-defined", 5: "unused",
               6: "byte"}

# How llama.cpp splits text before byte-level BPE, by ``tokenizer.ggml.pre`` (llama-vocab.cpp).
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = _LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
_PRE_SPLITS: dict[str, tuple[str, ...]] = {
    "default": (_GPT2,), "gpt-2": (_GPT2,), "gpt2": (_GPT2,), "phi-2": (_GPT2,), "stablelm2": (_GPT2,),
    "llama-bpe": (_LLAMA3,), "llama3": (_LLAMA3,), "smaug-bpe": (_LLAMA3,),
    "qwen2": (_QWEN2,), "deepseek-r1-qwen": (_QWEN2,),
    "smollm": (r"\p{N}", _GPT2), "starcoder": (r"\p{N}", _GPT2), "refact": (r"\p{N}", _GPT2),
}


def _dequantise(g: GGUFFile, t: TensorEntry) -> np.ndarray:
    """The tensor ``t`` as a float32 (rows, dim) array, dequantised in chunks of rows."""
    from gguf import GGMLQuantizationType, dequantize

    qtype = GGMLQuantizationType(t.qtype)
    if len(t.dims) != 2:
        raise FormatError(f"{g.path}: tensor {t.name!r} has shape {tuple(reversed(t.dims))}; an embedding "
                          "table is 2-D")
    dim, rows = t.dims  # GGUF lists the fastest-moving dimension first
    if rows < 1 or dim < 1:
        raise FormatError(f"{g.path}: tensor {t.name!r} declares {rows} × {dim}; both must be at least 1")
    check_matrix(f"{g.path}: tensor {t.name!r}", (rows, dim))  # the header parse already checked the bytes held
    data = g.raw(t).reshape(rows, t.nbytes // rows)
    out = np.empty((rows, dim), dtype=np.float32)
    # gguf's dequantisers make several float32 temporaries per block: small chunks keep the peak near one table
    step = max(1, (1 << 20) // max(1, dim))
    try:
        for s in range(0, rows, step):
            out[s:s + step] = np.asarray(dequantize(data[s:s + step], qtype), dtype=np.float32).reshape(-1, dim)
    except NotImplementedError as err:
        raise FormatError(f"{g.path}: tensor {t.name!r} is stored as {qtype.name}, which the gguf package "
                          "cannot dequantise; convert the file to F16, Q8_0 or a K-quant with llama.cpp") from err
    return out


def _bpe_tokenizer(path: Path, tokens: list[str], merges: list[str], types: Sequence[int], pre: str,
                   notes: list[str]) -> Tokenizer:
    from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
    from tokenizers import Tokenizer as _T

    vocab = {t: i for i, t in enumerate(tokens)}
    pairs: list[tuple[str, str]] = []
    for n, m in enumerate(merges):
        a, sep, b = m.partition(" ")
        if not sep:
            raise FormatError(f"{path}: tokenizer.ggml.merges[{n}] = {m!r} is not two tokens separated by a space")
        pairs.append((a, b))
    try:
        tok = _T(models.BPE(vocab, pairs, ignore_merges=pre in ("llama-bpe", "llama3")))
    except Exception as err:  # tokenizers raises plain Exception
        raise FormatError(f"{path}: the BPE tokenizer in the metadata is inconsistent ({err})") from err
    splits = _PRE_SPLITS.get(pre)
    if splits is None:
        notes.append(f"pre-tokenizer {pre!r} is not one llama.cpp names; split as GPT-2 does, so ids may differ "
                     "on digits and punctuation")
        splits = (_GPT2,)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        *(pre_tokenizers.Split(Regex(r), behavior="isolated") for r in splits),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    added = [AddedToken(tokens[i], special=types[i] == 3, normalized=False)
             for i in range(len(tokens)) if i < len(types) and types[i] in (3, 4)]
    if added:
        tok.add_tokens(added)
    return HFTokenizer(tok, "GGUF metadata (byte-level BPE)")


def _wordpiece_tokenizer(tokens: list[str], types: Sequence[int]) -> Tokenizer:
    """BERT's WordPiece, lower-cased as llama.cpp's WPM tokenizer does."""
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as _T

    unk = next((t for i, t in enumerate(tokens) if i < len(types) and types[i] == 2), "[UNK]")
    tok = _T(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token=unk))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    special = [AddedToken(tokens[i], special=True, normalized=False)
               for i in range(len(tokens)) if i < len(types) and types[i] == 3]
    if special:
        tok.add_special_tokens(special)
    return HFTokenizer(tok, "GGUF metadata (WordPiece)", unk_token=unk)


def _sentencepiece_proto(tokens: Sequence[str], scores: Sequence[float], types: Sequence[int],
                         add_space_prefix: bool, ids: dict[str, int]) -> bytes:
    """A serialised SentencePiece ``ModelProto`` (BPE) holding the file's pieces, for the sentencepiece library."""
    import struct

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(num: int, payload: bytes) -> bytes:
        return varint(num << 3 | 2) + varint(len(payload)) + payload

    def num(num_: int, value: int) -> bytes:
        return varint(num_ << 3) + varint(value)

    parts = []
    for i, piece in enumerate(tokens):
        kind = types[i] if i < len(types) and types[i] in (1, 2, 3, 4, 5, 6) else 1
        body = field(1, piece.encode("utf-8")) + varint(2 << 3 | 5) + struct.pack("<f", float(scores[i]))
        parts.append(field(1, body + num(3, kind)))
    trainer = num(3, 2) + num(35, int(any(t == 6 for t in types)))
    for key, number in (("unk", 40), ("bos", 41), ("eos", 42), ("pad", 43)):
        trainer += varint(number << 3) + varint(ids.get(key, -1) & 0xFFFFFFFFFFFFFFFF)
    normalizer = field(1, b"identity") + num(3, int(add_space_prefix)) + num(4, 0) + num(5, 1)
    return b"".join(parts) + field(2, trainer) + field(3, normalizer)


def _spm_tokenizer(g: GGUFFile, tokens: list[str], types: Sequence[int]) -> Tokenizer:
    from core.tokens import SentencePieceTokenizer

    scores = g.field("tokenizer.ggml.scores")
    scores = [0.0] * len(tokens) if scores is None else scores
    if len(scores) != len(tokens):
        raise FormatError(f"{g.path}: {len(scores)} scores for {len(tokens)} tokens in the metadata")
    space = g.field("tokenizer.ggml.add_space_prefix")
    ids = {k: int(v) for k in ("unk", "bos", "eos", "pad")
           if (v := g.field(f"tokenizer.ggml.{'unknown' if k == 'unk' else k}_token_id")) is not None}
    proto = _sentencepiece_proto(tokens, scores, types, True if space is None else bool(space), ids)
    user_defined = frozenset(i for i, t in enumerate(types) if t == 4)
    return SentencePieceTokenizer.from_bytes(proto, "GGUF metadata (SentencePiece)", user_defined)


def load_gguf(path: Path, *, tensor: str | None = None, output: bool = False,
              vocab: str | os.PathLike[str] | None = None) -> EmbeddingMatrix:
    """The token table of a GGUF file (or its output table with ``output``), with the file's tokenizer.

    Args:
        path: the ``.gguf`` file.
        tensor: a tensor name to read instead (``token_embd.weight`` by default).
        output: read ``output.weight``; a file without it ties its output to the input table.
        vocab: ``"rows"`` to use row numbers instead of the file's tokens.

    Raises:
        FormatError: the file is truncated or malformed, the tensor is missing or not 2-D, or its type
            cannot be dequantised.
    """
    g = read_gguf_header(path)
    table = g.tensors
    has_output = OUTPUT_TENSOR in table
    name = tensor or (OUTPUT_TENSOR if output and has_output else INPUT_TENSOR)
    if name not in table:
        two_d = [n for n, t in table.items() if len(t.dims) == 2][:8]
        raise FormatError(f"{path}: no tensor {name!r}; 2-D tensors in the file: {', '.join(two_d) or 'none'}")
    notes: list[str] = []
    if output and not has_output:
        notes.append("the file has no output.weight: the output embedding is tied to token_embd.weight")
    vectors = _dequantise(g, table[name])
    rows = vectors.shape[0]
    tokens = g.field("tokenizer.ggml.tokens")
    raw_types = g.field("tokenizer.ggml.token_type")
    types = [] if raw_types is None else [int(t) for t in raw_types]
    model = g.field("tokenizer.ggml.model")
    if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens[:1])):
        raise FormatError(f"{path}: tokenizer.ggml.tokens is not a list of strings")
    metadata: dict[str, list[str]] = {}
    tok: Tokenizer | None = None
    if vocab != "rows" and tokens:
        if model == "gpt2":
            tok = _bpe_tokenizer(path, tokens, g.field("tokenizer.ggml.merges") or [], types,
                                 str(g.field("tokenizer.ggml.pre") or "default"), notes)
        elif model == "llama":
            tok = _spm_tokenizer(g, tokens, types)
        elif model == "bert":
            tok = _wordpiece_tokenizer(tokens, types)
        else:
            notes.append(f"tokenizer model {model!r} is not one we rebuild (gpt2, llama, bert); words are looked up "
                         "as tokens")
    if tok is not None:
        v = vocab_from_tokenizer(tok, rows)
        row_tokens, unassigned, vsource, vnotes = v.tokens, v.unassigned_from, "GGUF metadata", v.notes
    elif vocab != "rows" and tokens and len(tokens) == rows and len(set(tokens)) == rows:
        row_tokens, unassigned, vsource, vnotes = list(tokens), None, "GGUF metadata", ()
    else:
        row_tokens, unassigned, vsource = [str(i) for i in range(rows)], None, "rows"
        vnotes = ("tokens are the row numbers",)
    if len(types) >= rows:
        metadata["gguf_type"] = [TOKEN_TYPES.get(int(t), str(t)) for t in types[:rows]]
    from gguf import GGMLQuantizationType

    stored = GGMLQuantizationType(table[name].qtype).name
    prov = Provenance(
        format="gguf", path=str(path), tensor=name, dtype=stored, file_bytes=path.stat().st_size,
        vocab_source=vsource, tied=not has_output,
        candidates=tuple(n for n in (INPUT_TENSOR, OUTPUT_TENSOR) if n in table and n != name),
        notes=tuple(notes) + tuple(vnotes), key=source_key([path], "gguf", name, str(vocab)),
        extra={"chat_template": g.field("tokenizer.chat_template"),
               "architecture": g.field("general.architecture"), "tokenizer_model": model},
    )
    return EmbeddingMatrix(vectors, row_tokens, tokenizer=tok, provenance=prov, metadata=metadata or None,
                           unassigned_from=unassigned)
