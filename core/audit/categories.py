"""What the tokenizer says about every row (reachable, special, declared-unused, unreachable, ...), from the
tokenizer files alone, never from token names: the under-trained check's reference tokens."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.matrix import EmbeddingMatrix
from core.tokens import strip_marker

__all__ = ["read_json", "token_categories", "tokenizer_folder"]


def tokenizer_folder(m: EmbeddingMatrix) -> Path | None:
    if not m.provenance.path:
        return None
    p = Path(m.provenance.path)
    folder = p if p.is_dir() else p.parent
    return folder if folder.is_dir() else None


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def _special_roles(m: EmbeddingMatrix) -> tuple[set[str], str]:
    """Special tokens the tokenizer files give a job (bos/eos/pad/…, post-processor, chat template)."""
    roles: set[str] = set()
    if m.tokenizer.unk_token:
        roles.add(m.tokenizer.unk_token)
    templates = ""
    folder = tokenizer_folder(m)
    if folder is None:
        return roles, templates
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        cfg = read_json(folder / name)
        if not isinstance(cfg, Mapping):
            continue
        for key, val in cfg.items():
            if key.endswith("_token") or key == "additional_special_tokens":
                roles.update(_strings(val))
            elif key == "chat_template":
                templates += " ".join(_strings(val))
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            templates += jinja.read_text(encoding="utf-8")
    tj = read_json(folder / "tokenizer.json")
    if isinstance(tj, Mapping):
        roles.update(_strings(tj.get("post_processor")))
        roles.update(_strings(tj.get("padding")))
    return roles, templates


_PREFIXES = ("the", "z", "un", "x", "a", "q", "1", "«", "中")


def token_categories(m: EmbeddingMatrix, progress: Callable[[float], None] | None = None) -> np.ndarray:
    """What the tokenizer says about every row, found from the tokenizer alone (never from names).

    Returns:
        one label per row: "ok" (reachable from text), "special" (a special token with a job),
        "declared-unused" (a special token the tokenizer files give no job: reserved/unused),
        "unreachable" (no encoding of its own decoded text gives it back, even after a prefix for
        continuation pieces), "undecodable" (a partial UTF-8 byte sequence), "unassigned" (a row no token
        maps to).
    """
    n = len(m)
    cats = np.empty(n, dtype=object)
    cats.fill("ok")  # one shared "ok" (np.full would make a string per row: 13 MiB for 262k rows)
    if m.unassigned_from is not None:
        cats[m.unassigned_from:] = "unassigned"
    if not m.has_tokenizer:
        return cats
    tok = m.tokenizer
    vocab = tok.vocab()
    assigned = np.zeros(n, dtype=bool)
    for i in vocab.values():
        if 0 <= i < n:
            assigned[i] = True
    cats[~assigned] = "unassigned"
    roles, templates = _special_roles(m)
    for t in tok.special_tokens:
        sid = vocab.get(t)
        if sid is not None and 0 <= sid < n:
            cats[sid] = "special" if (t in roles or (templates and t in templates)) else "declared-unused"
    scheme = tok.scheme
    items = sorted((i, t) for t, i in vocab.items() if 0 <= i < n and cats[i] == "ok")
    for k, (i, t) in enumerate(items):
        if progress is not None and k % 2048 == 0:
            progress(k / max(1, len(items)))
        text = tok.decode([i])
        if i in {p.id for p in tok.encode(text)}:
            continue
        if "\ufffd" in text:
            cats[i] = "undecodable"
            continue
        core_text, continues = strip_marker(t, scheme)
        if continues:
            piece = core_text if scheme == "wordpiece" else text
            if any(i in {p.id for p in tok.encode(pre + piece)} for pre in _PREFIXES):
                continue
        cats[i] = "unreachable"
    return cats

