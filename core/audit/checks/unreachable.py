"""Unreachable tokens (Land & Bartolo 2024): tokens, not special, that the tokenizer never produces when it
encodes their own decoded text (a continuation piece counts as reachable when a common prefix glued to it
gives it back). Training never showed the model such a token, so its row is whatever it was initialised to;
each is listed with what the encoding gives instead."""

from __future__ import annotations

import pandas as pd

from core.audit._context import Context
from core.audit._shared import rows_of_category, status_above, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check

#: Tokens whose encoding is shown in the table (the check counts them all).
_SHOWN = 500


def run(ctx: Context) -> Check:
    m, policy = ctx.m, ctx.policy
    ids = rows_of_category(ctx, "unreachable", "unreachable", "reachability comes from the tokenizer's own encodings")
    if isinstance(ids, Check):
        return ids
    tok = m.tokenizer
    shown = ids[:_SHOWN].tolist()
    texts = [tok.decode([i]) for i in shown]
    instead = [" ".join(p.token for p in tok.encode(t)) for t in texts]
    table = pd.DataFrame({"token": tokens_of(m, shown), "id": shown, "decoded": texts, "encodes as": instead})
    share = ids.size / max(1, len(m))
    status = status_above(share, policy.num("unreachable", "warn_above"), policy.num("unreachable", "fail_above"))
    reason = (f"{ids.size:,} tokens ({share:.1%} of the vocabulary) are never produced by encoding their own text"
              + (f", e.g. {tokens_of(m, shown[:1])[0]!r} → {instead[0]!r}" if shown else ""))
    return Check("unreachable", status, float(share), policy.section("unreachable"), reason, tokens_of(m, ids),
                 tuple(int(i) for i in ids), data={"rows": table})


SPEC = register(CheckSpec(
    id="unreachable", title="Unreachable tokens", unit="fraction of the vocabulary",
    premise="Land & Bartolo (2024): a token the tokenizer never outputs is never trained, so its row keeps its "
            "initialisation. Holds for every model tokenizer; reserved slots (BERT's [unusedN]) are unreachable by "
            "design, hence a warning only past a share of the vocabulary.",
    defaults={"warn_above": 0.05, "fail_above": 1.0},
    rules={"warn_above": number(0, 1), "fail_above": number(0, 1)},
    run=run, order=95, step=95, weight=0.01, label="unreachable tokens",
))
