"""Pieces every loader shares: cache keys, vocabulary files (read and written), row-number tokens."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.errors import FormatError
from core.tokens import HFTokenizer, Tokenizer


def source_key(paths: Iterable[Path], *options: object) -> str:
    """A cheap identity for caches: each file's resolved path, size and mtime, plus the options."""
    h = hashlib.blake2b(digest_size=10)
    for p in sorted({Path(p).resolve() for p in paths}):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogatepass"))
    h.update(repr(options).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def total_bytes(paths: Iterable[Path]) -> int:
    return sum(os.stat(p).st_size for p in set(paths))


#: ``Provenance.vocab_source`` of a matrix whose tokens are its row numbers.
ROW_NUMBERS = "row numbers"


def row_tokens(n: int) -> list[str]:
    """Tokens for a matrix without a vocabulary: the row numbers as strings."""
    return [str(i) for i in range(n)]


def read_vocab_file(path: Path) -> list[str]:
    """Tokens from ``vocab.txt`` (one a line) or a PaddleNLP/HF-style ``vocab.json``.

    ``vocab.json`` may hold ``idx_to_token`` (a list), ``token_to_idx`` (a mapping), or be a plain
    token → id mapping.

    Raises:
        FormatError: unreadable file, ids with gaps, or duplicate tokens (naming the line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(f"{path}: not UTF-8 text (byte {err.start}); vocabulary files must be UTF-8") from err
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise FormatError(f"{path}: not valid JSON ({err})") from err
        if isinstance(data, dict) and isinstance(data.get("idx_to_token"), list):
            tokens = [str(t) for t in data["idx_to_token"]]
        else:
            mapping = data.get("token_to_idx", data) if isinstance(data, dict) else None
            if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
                raise FormatError(f"{path}: expected idx_to_token (a list), token_to_idx (a mapping) or a "
                                  "token → id mapping")
            tokens = [""] * len(mapping)
            for tok, idx in mapping.items():
                if not 0 <= idx < len(mapping) or tokens[idx]:
                    raise FormatError(f"{path}: token {tok!r} has id {idx}; ids must be 0..{len(mapping) - 1}, "
                                      "each used once")
                tokens[idx] = str(tok)
    else:
        tokens = text.split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        tokens = [t[:-1] if t.endswith("\r") else t for t in tokens]
    seen: dict[str, int] = {}
    for i, t in enumerate(tokens):
        if t in seen:
            raise FormatError(f"{path}: line {i + 1}: token {t!r} repeats line {seen[t] + 1}; "
                              "each token must appear once")
        seen[t] = i
    return tokens


@dataclass(frozen=True)
class Vocab:
    """Tokens for a matrix, with the tokenizer and where they came from."""

    tokens: list[str]
    tokenizer: Tokenizer | None
    source: str
    notes: tuple[str, ...] = ()
    unassigned_from: int | None = None


def vocab_from_tokenizer(tok: Tokenizer, rows: int) -> Vocab:
    tokens, first = fit_vocab(tok, rows)
    notes: tuple[str, ...] = ()
    if first is not None:
        notes = (f"rows {first}..{rows - 1} have no token in the tokenizer (padding rows)",)
    extra = 0 if first is None and len(tokens) == len(tok.vocab()) else sum(
        1 for i in tok.vocab().values() if i >= rows)
    if extra:
        notes += (f"{extra} tokenizer ids are past the matrix's {rows} rows",)
    return Vocab(tokens, tok, tok.source, notes, first)


def vocab_for(folder: Path, rows: int, vocab: str | os.PathLike[str] | None, label: str) -> Vocab:
    """Tokens (and tokenizer, when there is one) for a matrix of ``rows`` rows found in ``folder``.

    Looks at ``vocab`` first (``"rows"``: the row numbers), then ``tokenizer.json``/``vocab.txt``/``vocab.json``
    beside the file. Without any, tokens are the row numbers and a note says so.
    """
    if vocab == "rows":
        return row_vocab(rows, "tokens are the row numbers (vocab='rows')")
    if vocab is not None:
        vpath = Path(vocab)
        if not vpath.exists():
            raise FormatError(f"vocab={vpath}: no such file or folder")
        if vpath.is_dir() or vpath.name == "tokenizer.json":
            tok = HFTokenizer.from_folder(vpath if vpath.is_dir() else vpath.parent)
            if tok is None:
                raise FormatError(f"vocab={vpath}: the folder has no tokenizer.json, vocab.txt or vocab.json")
            return vocab_from_tokenizer(tok, rows)
        tokens = read_vocab_file(vpath)
        check_count(tokens, rows, vpath, label)
        return Vocab(tokens, None, vpath.name)
    if (folder / "tokenizer.json").is_file():
        tok = HFTokenizer.from_folder(folder)
        assert tok is not None
        return vocab_from_tokenizer(tok, rows)
    for name in ("vocab.txt", "vocab.json"):
        if (folder / name).is_file():
            tokens = read_vocab_file(folder / name)
            check_count(tokens, rows, folder / name, label)
            return Vocab(tokens, None, name)
    return row_vocab(rows, "no vocabulary file was found, so tokens are the row numbers; pass vocab= "
                     "(vocab.txt, vocab.json or a tokenizer folder)")


def row_vocab(rows: int, note: str) -> Vocab:
    """Row numbers as tokens, with the note that says why."""
    return Vocab(row_tokens(rows), None, ROW_NUMBERS, (note,))


def check_count(tokens: Sequence[str], rows: int, vpath: Path, label: str) -> None:
    if len(tokens) != rows:
        raise FormatError(f"{vpath} has {len(tokens)} tokens but {label} has {rows} rows; "
                          "they must match one to one")


def fit_vocab(tok: Tokenizer, rows: int) -> tuple[list[str], int | None]:
    """Tokens for ``rows`` rows from a tokenizer's vocabulary.

    Rows past the tokenizer's vocabulary (padding rows) get placeholder names; ids past the matrix are
    left out (lookups that reach them report it).

    Returns:
        tokens, and the first unassigned row (or None when every row has a token).
    """
    v = tok.vocab()
    if len(v) == rows and max(v.values(), default=-1) == rows - 1:  # the common case: ids are exactly 0..n-1
        by_id = sorted(v, key=v.__getitem__)
        return by_id, None
    tokens: list[str | None] = [None] * rows
    for t, i in v.items():
        if 0 <= i < rows:
            tokens[i] = t
    unassigned = [i for i, t in enumerate(tokens) if t is None]
    taken = set(v)
    for i in unassigned:
        name = f"[row {i}]"
        while name in taken:
            name += "'"
        tokens[i] = name
    first = unassigned[0] if unassigned and unassigned == list(range(unassigned[0], rows)) else None
    return [str(t) for t in tokens], first


# -- writing vocabulary files ------------------------------------------------------------------------

def faithful_tokenizer(tokenizer: Tokenizer | None, tokens: Sequence[str]) -> HFTokenizer | None:
    """The model tokenizer, when writing it reproduces exactly ``tokens`` (every row, ids unchanged)."""
    if not isinstance(tokenizer, HFTokenizer):
        return None
    fitted, _ = fit_vocab(tokenizer, len(tokens))
    return tokenizer if fitted == list(tokens) else None


def write_vocab_json(folder: Path, tokens: Sequence[str]) -> str:
    """``vocab.json`` as ``{"idx_to_token": [...]}``, which :func:`read_vocab_file` reads; returns its name."""
    (folder / "vocab.json").write_text(json.dumps({"idx_to_token": list(tokens)}, ensure_ascii=False),
                                       encoding="utf-8")
    return "vocab.json"


def write_vocab(folder: Path, tokens: Sequence[str], tokenizer: Tokenizer | None, *, plain_txt: bool,
                subset: bool = False) -> tuple[list[str], list[str]]:
    """The vocabulary beside written weights, so that :func:`vocab_for` finds the same tokens.

    ``tokenizer.json`` when the model's tokenizer reproduces ``tokens`` (never for a ``subset`` of the rows);
    besides it ``vocab.txt`` (``plain_txt``, unless a token holds a line break) or ``vocab.json``.

    Returns:
        the file names written, and notes on the choice.
    """
    files: list[str] = []
    notes: list[str] = []
    tok = None if subset else faithful_tokenizer(tokenizer, tokens)
    if tok is not None:
        tok.save(folder / "tokenizer.json")
        files.append("tokenizer.json")
        notes.append(f"tokenizer.json is the model's tokenizer ({tok.scheme}), so lookups work as before")
    line_safe = not any(("\n" in t or "\r" in t) for t in tokens)
    if plain_txt and line_safe:
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in tokens), encoding="utf-8", newline="")
        files.append("vocab.txt")
    elif tok is None or plain_txt:
        files.append(write_vocab_json(folder, tokens))
        if plain_txt:
            notes.append("some tokens hold line breaks, so the vocabulary is vocab.json (idx_to_token), not "
                         "vocab.txt")
    if tok is None and not plain_txt:
        notes.append("vocab.json lists the tokens (idx_to_token); no model tokenizer was written"
                     + (" because only some rows are exported" if subset else ""))
    return files, notes
