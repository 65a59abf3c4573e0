"""Partial UTF-8 tokens: byte-level tokens whose bytes are an incomplete UTF-8 sequence (they decode to U+FFFD
alone). A model only ever meets them inside a longer character, so a low score means little: they are
counted here and kept apart from the under-trained candidates."""

from __future__ import annotations

import pandas as pd

from core.audit._context import Context
from core.audit._shared import rows_of_category, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.result import Check


def run(ctx: Context) -> Check:
    m, policy = ctx.m, ctx.policy
    ids = rows_of_category(ctx, "partial_utf8", "undecodable",
                           "partial byte sequences come from the tokenizer's decoding")
    if isinstance(ids, Check):
        return ids
    table = pd.DataFrame({"token": tokens_of(m, ids), "id": ids,
                          "decodes to": [repr(m.tokenizer.decode([int(i)])) for i in ids[:2000]]
                          + ["…"] * max(0, ids.size - 2000)})
    reason = (f"{ids.size:,} byte-level tokens are incomplete UTF-8 sequences; they are left out of the "
              "under-trained candidates" if ids.size else "no token is an incomplete UTF-8 sequence")
    return Check("partial_utf8", "pass", float(ids.size), policy.section("partial_utf8"), reason, tokens_of(m, ids),
                 tuple(int(i) for i in ids), data={"rows": table})


SPEC = register(CheckSpec(
    id="partial_utf8", title="Partial UTF-8 tokens", unit="tokens",
    premise="Byte-level vocabularies hold pieces of multi-byte characters; they are reached only inside whole "
            "characters, so they are reported apart rather than as under-trained. Informational: it never fails.",
    defaults={}, rules={}, run=run, order=96, step=96, weight=0.005, label="partial UTF-8 tokens",
))
