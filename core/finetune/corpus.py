"""Moved to :mod:`core.corpus` (fine-tuning and comparison both read corpora); these names stay importable here."""

from core.corpus import (
    UNKNOWN_POLICIES,
    Corpus,
    TextSource,
    load_corpus,
    read_labelled,
    read_texts,
    tokenize,
    tokenize_texts,
    unk_row,
)

__all__ = ["UNKNOWN_POLICIES", "Corpus", "TextSource", "load_corpus", "read_labelled", "read_texts",
           "tokenize", "tokenize_texts", "unk_row"]
