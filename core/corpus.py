"""Corpora, read and tokenised into rows of a matrix: what fine-tuning trains on and what compare filters by.

A corpus is a text file with one document a line, or one column of a ``.jsonl``/``.csv``/``.tsv`` file.
Texts are split by the matrix's own tokenizer when it has one (Hugging Face models), otherwise by
whitespace into words looked up in the vocabulary (exactly, then lower-cased, then without surrounding
punctuation); with ``cjk_chars`` every CJK character becomes its own token. Pieces the vocabulary lacks
are counted, and either skipped or mapped to the unknown token (``unknown="skip"|"unk"``).

    >>> texts = read_texts("news.txt")                       # one document a line
    >>> corpus = tokenize(m, texts, unknown="skip")
    >>> corpus.tokens, corpus.unknown
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from core.errors import FormatError, ParameterError
from core.matrix import EmbeddingMatrix

#: Values accepted by ``unknown=``: drop unknown pieces, or map them to the unknown token's row.
UnknownPolicy = Literal["skip", "unk"]
UNKNOWN_POLICIES: tuple[UnknownPolicy, ...] = get_args(UnknownPolicy)
_UNK_NAMES = ("[UNK]", "<unk>", "<UNK>", "UNK")
_CJK_RUN = re.compile(
    "([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f])"
)
_PUNCT = string.punctuation + "“”‘’«»…—–、。，！？；：（）《》「」"
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class TextSource:
    """What was read: the file, its content digest and size, and how many documents it gave."""

    path: str
    digest: str
    bytes: int
    documents: int
    column: str | None = None


@dataclass(frozen=True)
class Corpus:
    """A tokenised corpus: the matrix rows of every document, concatenated.

    Attributes:
        ids: int64 matrix rows of all documents, one after another (read-only).
        offsets: where each document starts in ``ids``, plus the end (``documents + 1`` values).
        unknown: pieces the vocabulary lacks (skipped or mapped, per ``unknown_policy``).
        unknown_examples: the most common unknown pieces with their counts.
        source: the file the texts came from (empty path for texts given directly).
    """

    ids: np.ndarray
    offsets: np.ndarray
    unknown: int
    unknown_examples: tuple[tuple[str, int], ...]
    unknown_policy: str
    cjk_chars: bool
    source: TextSource
    tokenizer: str = "words"
    empty_documents: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def tokens(self) -> int:
        """Tokens kept (after skipping unknown pieces)."""
        return int(self.ids.shape[0])

    @property
    def documents(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def document(self, i: int) -> np.ndarray:
        """Rows of document ``i``."""
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def to_json(self) -> dict[str, Any]:
        """The run card's ``corpus`` entry."""
        return {
            "path": self.source.path, "digest": self.source.digest, "bytes": self.source.bytes,
            "column": self.source.column, "documents": self.documents, "tokens": self.tokens,
            "distinct_tokens": int(np.unique(self.ids).shape[0]) if self.tokens else 0,
            "unknown": self.unknown, "unknown_policy": self.unknown_policy,
            "unknown_examples": [[t, c] for t, c in self.unknown_examples],
            "empty_documents": self.empty_documents, "tokenizer": self.tokenizer, "cjk_chars": self.cjk_chars,
        }


# -- reading -------------------------------------------------------------------------------------
def _read_text(path: Path) -> tuple[str, TextSource]:
    if not path.is_file():
        raise FormatError(f"{path}: no such corpus file")
    data = path.read_bytes()
    digest = hashlib.blake2b(data, digest_size=8).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise FormatError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                          f"{err.start}); save the corpus as UTF-8") from err
    return text, TextSource(str(path), digest, len(data), 0)


def _table(text: str, path: Path) -> Any:
    import pandas as pd

    sep = _TABLE_SUFFIXES[path.suffix.lower()]
    try:
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise FormatError(f"{path}: not a readable {path.suffix.lstrip('.').upper()} file ({err})") from err


def _column(df: Any, name: str, path: Path, what: str) -> list[str]:
    if name not in df.columns:
        cols = ", ".join(repr(str(c)) for c in df.columns[:20]) or "none"
        raise ParameterError(f"{what}={name!r}: {path} has no such column; its columns are {cols}")
    return [str(v) for v in df[name].tolist()]


def _jsonl(text: str, path: Path, keys: list[tuple[str, str]]) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in keys]
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise FormatError(f"{path}: line {n}: not valid JSON ({err})") from err
        if not isinstance(obj, dict):
            raise FormatError(f"{path}: line {n}: expected a JSON object with the text under a key")
        for col, (key, what) in zip(out, keys, strict=True):
            if key not in obj:
                have = ", ".join(repr(k) for k in list(obj)[:20]) or "none"
                raise ParameterError(f"{what}={key!r}: {path} line {n} has no such key; its keys are {have}")
            value = obj[key]
            col.append("" if value is None else str(value))
    return out


def _check_plain(path: Path, column: str | None) -> None:
    if column is not None:
        raise ParameterError(f"text_column={column!r}: {path} is plain text (one document a line); columns "
                             "apply to .csv, .tsv and .jsonl files")


def read_texts(path: str | os.PathLike[str], column: str | None = None) -> tuple[list[str], TextSource]:
    """The documents of a corpus file: its non-blank lines, or one column of a ``.jsonl``/``.csv``/``.tsv``.

    Args:
        path: the corpus file.
        column: the text column (key) of a ``.jsonl``/``.csv``/``.tsv`` file; default "text".

    Raises:
        FormatError: the file is missing, not UTF-8, malformed, or holds no non-blank document.
        ParameterError: the column is not there (the message lists the ones that are).
    """
    p = Path(path)
    text, src = _read_text(p)
    suffix = p.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        docs = _column(_table(text, p), column or "text", p, "text_column")
    elif suffix == ".jsonl":
        docs = _jsonl(text, p, [(column or "text", "text_column")])[0]
    else:
        _check_plain(p, column)
        docs = text.splitlines()
    docs = [d.strip() for d in docs]
    docs = [d for d in docs if d]
    if not docs:
        raise FormatError(f"{p}: the corpus is empty (no non-blank documents); give a file with one document "
                          "a line" + (f" and text in column {column or 'text'!r}" if suffix != ".txt" else ""))
    col = (column or "text") if suffix in _TABLE_SUFFIXES or suffix == ".jsonl" else None
    return docs, TextSource(src.path, src.digest, src.bytes, len(docs), col)


def read_labelled(path: str | os.PathLike[str], text_column: str = "text",
                  label_column: str = "label") -> tuple[list[str], list[str], TextSource]:
    """Texts and labels from a ``.csv``/``.tsv``/``.jsonl`` file; rows with a blank text or label are dropped.

    Raises:
        FormatError: the file is missing, not UTF-8, not a table, or has no labelled row.
        ParameterError: a column is not there (the message lists the ones that are).
    """
    p = Path(path)
    text, src = _read_text(p)
    suffix = p.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        df = _table(text, p)
        texts = _column(df, text_column, p, "text_column")
        labels = _column(df, label_column, p, "label_column")
    elif suffix == ".jsonl":
        texts, labels = _jsonl(text, p, [(text_column, "text_column"), (label_column, "label_column")])
    else:
        raise FormatError(f"{p}: labelled data must be a .csv, .tsv or .jsonl file with a text and a label "
                          "column")
    pairs = [(t.strip(), lab.strip()) for t, lab in zip(texts, labels, strict=True)
             if t.strip() and lab.strip()]
    if not pairs:
        raise FormatError(f"{p}: no row has both a text ({text_column!r}) and a label ({label_column!r})")
    return ([t for t, _ in pairs], [lab for _, lab in pairs],
            TextSource(src.path, src.digest, src.bytes, len(pairs), f"{text_column},{label_column}"))


# -- tokenising ----------------------------------------------------------------------------------
def unk_row(m: EmbeddingMatrix) -> int | None:
    """Row of the matrix's unknown token ([UNK], <unk>, ...), or None when it has none."""
    names = ([m.tokenizer.unk_token] if m.tokenizer.unk_token else []) + list(_UNK_NAMES)
    for name in names:
        idx = m.key_to_index.get(name)
        if idx is not None:
            return idx
    return None


def _split_words(text: str, cjk_chars: bool) -> list[str]:
    words = text.split()
    if not cjk_chars:
        return words
    out: list[str] = []
    for w in words:
        out.extend(part for part in _CJK_RUN.split(w) if part)
    return out


def _word_row(k2i: dict[str, int], word: str) -> int | None:
    idx = k2i.get(word)
    if idx is None:
        idx = k2i.get(word.lower())
    if idx is None:
        bare = word.strip(_PUNCT)
        if bare and bare != word:
            idx = k2i.get(bare)
            if idx is None:
                idx = k2i.get(bare.lower())
    return idx


def _check_policy(m: EmbeddingMatrix, unknown: str) -> int | None:
    if unknown not in UNKNOWN_POLICIES:
        raise ParameterError(f"unknown={unknown!r}: must be one of {', '.join(UNKNOWN_POLICIES)}")
    unk = unk_row(m) if unknown == "unk" else None
    if unknown == "unk" and unk is None:
        raise ParameterError("unknown='unk': this vocabulary has no unknown token ([UNK], <unk>) to map "
                             "unknown pieces to; use unknown='skip'")
    return unk


def tokenize_texts(m: EmbeddingMatrix, texts: list[str], *, unknown: UnknownPolicy = "skip",
                   cjk_chars: bool = False) -> tuple[np.ndarray, np.ndarray, collections.Counter[str]]:
    """Rows of every text: (ids, offsets, unknown-piece counter). See :func:`tokenize`."""
    unk = _check_policy(m, unknown)
    n = len(m)
    ids: list[int] = []
    offsets = [0]
    missing: collections.Counter[str] = collections.Counter()
    if m.has_tokenizer:
        for text in texts:
            for p in m.lookup(text):
                if p.unknown or not 0 <= p.id < n:
                    missing[text[p.start:p.end] or p.token] += 1
                    if unk is not None:
                        ids.append(unk)
                else:
                    ids.append(p.id)
            offsets.append(len(ids))
    else:
        k2i = m.key_to_index
        for text in texts:
            for w in _split_words(text, cjk_chars):
                idx = _word_row(k2i, w)
                if idx is None:
                    missing[w] += 1
                    if unk is not None:
                        ids.append(unk)
                else:
                    ids.append(idx)
            offsets.append(len(ids))
    ids_arr = np.asarray(ids, dtype=np.int64)
    off_arr = np.asarray(offsets, dtype=np.int64)
    ids_arr.setflags(write=False)
    off_arr.setflags(write=False)
    return ids_arr, off_arr, missing


def tokenize(m: EmbeddingMatrix, texts: list[str], *, unknown: UnknownPolicy = "skip", cjk_chars: bool = False,
             source: TextSource | None = None) -> Corpus:
    """Tokenise ``texts`` into rows of ``m`` (documents that end up with no token are dropped).

    Args:
        m: the matrix whose tokenizer (or vocabulary) splits the text.
        texts: the documents.
        unknown: "skip" drops pieces the vocabulary lacks; "unk" maps them to the unknown token's row.
        cjk_chars: for word vocabularies, split CJK text into single characters.
        source: where the texts came from (for the run card).

    Raises:
        ParameterError: a bad policy, or "unk" for a vocabulary without an unknown token.
        FormatError: no document has a single known token.
    """
    ids, offsets, missing = tokenize_texts(m, texts, unknown=unknown, cjk_chars=cjk_chars)
    lengths = np.diff(offsets)
    keep = lengths > 0
    empty = int((~keep).sum())
    if empty:
        offsets = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        offsets.setflags(write=False)
    src = source or TextSource("", hashlib.blake2b("\n".join(texts).encode(), digest_size=8).hexdigest(),
                               sum(len(t.encode()) for t in texts), len(texts))
    if ids.shape[0] == 0:
        where = src.path or "the corpus"
        top = ", ".join(repr(t) for t, _ in missing.most_common(5))
        raise FormatError(f"{where}: the corpus is empty after tokenising: none of its {len(texts)} documents "
                          f"has a token in the vocabulary" + (f" (unknown: {top})" if top else ""))
    notes: list[str] = []
    if missing:
        total = ids.shape[0] + (sum(missing.values()) if unknown == "skip" else 0)
        notes.append(f"{sum(missing.values()):,} of {total:,} pieces are not in the vocabulary "
                     f"({'skipped' if unknown == 'skip' else 'mapped to the unknown token'})")
    if empty:
        notes.append(f"{empty} document(s) had no known token and were left out")
    return Corpus(ids, offsets, int(sum(missing.values())), tuple(missing.most_common(10)), unknown, cjk_chars,
                  src, tokenizer=m.tokenizer.scheme, empty_documents=empty, notes=tuple(notes))


def load_corpus(m: EmbeddingMatrix, path: str | os.PathLike[str], *, column: str | None = None,
                unknown: UnknownPolicy = "skip", cjk_chars: bool = False) -> Corpus:
    """Read and tokenise a corpus file (see :func:`read_texts` and :func:`tokenize`)."""
    texts, src = read_texts(path, column)
    return tokenize(m, texts, unknown=unknown, cjk_chars=cjk_chars, source=src)


__all__ = ["UNKNOWN_POLICIES", "UnknownPolicy", "Corpus", "TextSource", "load_corpus", "read_labelled", "read_texts",
           "tokenize", "tokenize_texts", "unk_row"]
