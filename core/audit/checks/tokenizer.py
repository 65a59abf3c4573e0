"""Tokenizer consistency: ids the tokenizer can produce that have no row (fail), special tokens without a row
(fail), rows no token reaches (warn past ``max_extra_fraction``), config ``vocab_size`` vs rows."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import pandas as pd

from core._status import Status
from core.audit._context import Context
from core.audit._shared import na
from core.audit._spec import CheckSpec, register
from core.audit.categories import read_json, tokenizer_folder
from core.audit.policy import number
from core.audit.result import Check
from core.matrix import EmbeddingMatrix

_INF = float("inf")


def _added_tokens(m: EmbeddingMatrix) -> frozenset[str]:
    """Tokens the tokenizer adds on top of its vocabulary model (special or not), e.g. multimodal placeholders."""
    added = set(m.tokenizer.special_tokens)
    # The tokenizers library keeps added tokens apart from the model's vocabulary; our Tokenizer face only
    # exposes the special ones, so ask the wrapped library object when there is one.
    decoder = getattr(getattr(m.tokenizer, "_tok", None), "get_added_tokens_decoder", None)
    if callable(decoder):
        with contextlib.suppress(Exception):
            added.update(str(t.content) for t in decoder().values())
    return frozenset(added)


def run(ctx: Context) -> Check:
    m, policy = ctx.m, ctx.policy
    pol = policy.section("tokenizer")
    if not m.has_tokenizer:
        return na("tokenizer", policy, f"no model tokenizer ({m.tokenizer.scheme} vocabulary from "
                                        f"{m.provenance.vocab_source or 'the file'}); nothing to compare")
    tok = m.tokenizer
    vocab = tok.vocab()
    rows = len(m)
    span = max(vocab.values()) + 1 if vocab else 0
    past = sorted((i, t) for t, i in vocab.items() if i >= rows)
    added = _added_tokens(m)
    # An added token past the table (Gemma 3's <image_soft_token>) is a placeholder the model swaps for
    # other vectors before the embedding lookup: worth naming, not damage. A regular vocabulary token past
    # the table indexes a row that is not there.
    missing = [(i, t) for i, t in past if t not in added]
    placeholders = [(i, t) for i, t in past if t in added]
    reached = np.zeros(rows, dtype=bool)
    for i in vocab.values():
        if 0 <= i < rows:
            reached[i] = True
    extra = int((~reached).sum())
    specials = sorted(tok.special_tokens)
    undeclared = [t for t in specials if t not in vocab]
    config_size = None
    folder = tokenizer_folder(m)
    if folder is not None:
        cfg = read_json(folder / "config.json")
        for c in (cfg, cfg.get("text_config") if isinstance(cfg, Mapping) else None):
            if isinstance(c, Mapping) and isinstance(c.get("vocab_size"), int):
                config_size = int(c["vocab_size"])
                break
    problems: list[str] = []
    status: Status = "pass"
    if len(missing) > policy.num("tokenizer", "max_missing"):
        status = "fail"
        problems.append(f"{len(missing)} vocabulary token ids reach past the matrix's {rows} rows (e.g. "
                        f"{', '.join(repr(t) for _, t in missing[:3])}); encoding them indexes a row that is not there")
    if undeclared:
        status = "fail"
        problems.append(f"special tokens the tokenizer declares but cannot encode: {', '.join(undeclared)}")
    if placeholders:
        status = "warn" if status == "pass" else status
        problems.append(f"{len(placeholders)} added/special token{'s' if len(placeholders) > 1 else ''} past the "
                        f"matrix's {rows} rows: {', '.join(f'{t!r} (id {i})' for i, t in placeholders[:10])}"
                        + (" …" if len(placeholders) > 10 else "") + "; such placeholders (e.g. multimodal "
                        "soft tokens) are replaced before the embedding lookup, but text that contains them "
                        "cannot be looked up here")
    if status != "fail" and extra / rows > policy.num("tokenizer", "max_extra_fraction"):
        status = "warn"
        problems.append(f"{extra} rows ({extra / rows:.1%}) are not reached by any token")
    if config_size is not None and config_size != rows and status == "pass":
        status = "warn"
        problems.append(f"config.json says vocab_size {config_size} but the matrix has {rows} rows")
    facts = pd.DataFrame({"item": ["rows in the matrix", "tokenizer ids (span)", "tokens in the tokenizer",
                                   "ids without a row", "added/special ids without a row", "rows no token reaches",
                                   "special tokens", "config vocab_size"],
                          "value": [str(rows), str(span), str(len(vocab)), str(len(missing)), str(len(placeholders)),
                                    str(extra), ", ".join(specials) or "—", str(config_size) if config_size else "—"]})
    reason = "; ".join(problems) if problems else (
        f"the tokenizer's {len(vocab)} tokens all have rows; {extra} rows unreached; all {len(specials)} special "
        "tokens present")
    # One entry per token, ``tokens`` and ``ids`` side by side; an undeclared special has no id, so the
    # reason names it instead.
    evidence = missing + placeholders
    return Check("tokenizer", status, float(len(missing)), pol, reason, tuple(t for _, t in evidence),
                 tuple(i for i, _ in evidence),
                 data={"facts": facts, "placeholders": [t for _, t in placeholders], "undeclared": undeclared})



SPEC = register(CheckSpec(
    id="tokenizer", title="Tokenizer consistency", unit="ids without a row",
    premise="Every id the tokenizer can produce needs a row. Added placeholders past the table (Gemma 3's "
            "<image_soft_token>) are swapped for other vectors before the lookup, so they are a warning; a "
            "regular vocabulary token without a row is a failure.",
    defaults={"max_missing": 0, "max_extra_fraction": 0.05},
    rules={"max_missing": number(0, _INF, True), "max_extra_fraction": number(0, 1)},
    run=run, order=80, step=80, weight=0.05, label="tokenizer",
))
