"""Filters of the moved-most table: the rows of a corpus's tokens."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from core.compare._common import _readonly
from core.matrix import EmbeddingMatrix


def corpus_rows(m: EmbeddingMatrix, path: str | os.PathLike[str], column: str | None = None) -> np.ndarray:
    """Rows of ``m`` whose token occurs in a corpus file, tokenised as fine-tuning does (sorted, unique).

    Uses :func:`core.corpus.load_corpus` (the matrix's own tokenizer, or words looked up in the
    vocabulary), so "tokens of the fine-tuning corpus" means exactly the rows a fine-tune trained.

    Raises:
        FormatError: the file is missing, unreadable, or has no token of the vocabulary.
    """
    from core.corpus import load_corpus

    return _readonly(np.unique(load_corpus(m, path, column=column).ids))


def corpus_rows_of_texts(m: EmbeddingMatrix, texts: Sequence[str]) -> np.ndarray:
    """:func:`corpus_rows` for texts already in memory (an upload)."""
    from core.corpus import tokenize

    return _readonly(np.unique(tokenize(m, list(texts)).ids))


