"""Chat-template tokens: the special tokens a conversation in the model's own chat format emits, scored.

Fine-tuning on a chat format whose special tokens were never trained gives infinite gradient norms and
garbage (reported for the reserved tokens of Llama 3.1 and Mistral Nemo). :func:`core.template.template_tokens`
renders the template in Jinja2's sandbox and lists the special tokens the encoding holds and the declared ones
nothing emits; this check looks each up in the under-trained check's scores: fail when a token the template
emits has an untrained row (zero, not finite, or a log norm as far below the bulk as the under-trained ``z``),
warn when only the under-trained indicator flags an emitted token, or when a declared special token appears
in no encoding and its row looks untrained, n/a (with the reason,
the Jinja error included) when there is no template or it does not render.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core._status import Status
from core.audit._context import Context
from core.audit._shared import na, robust_z
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check
from core.errors import EmbedscopeError
from core.matrix import EmbeddingMatrix
from core.template import TemplateToken, template_tokens

_INF = float("inf")
#: Tokens whose neighbours are looked up (the table lists every token; past this, without neighbours).
_MAX_NEIGHBORED = 300


def _neighbors(m: EmbeddingMatrix, ids: list[int], good: np.ndarray, k: int) -> dict[int, str]:
    from core.search import knn

    rows = [i for i in ids if good[i]][:_MAX_NEIGHBORED]
    if not rows or k < 1 or len(m) <= k:
        return {}
    try:
        nn, _ = knn(m, np.asarray(m.vectors[rows]), k, exclude=np.asarray(rows, dtype=np.int64),
                    mask=good)
    except EmbedscopeError:
        return {}
    keys = m.index_to_key
    return {r: ", ".join(keys[int(j)] for j in nn[q] if j >= 0) for q, r in enumerate(rows)}


def run(ctx: Context) -> Check:
    m, policy, scan = ctx.m, ctx.policy, ctx.scan
    pol = policy.section("template_tokens")
    if not m.has_tokenizer:
        return na("template_tokens", policy, f"no model tokenizer ({m.tokenizer.scheme} vocabulary); a chat "
                                             "template needs one to be encoded")
    found = template_tokens(m)
    if found.error is not None:
        where = f" in {found.source}" if found.source else ""
        return na("template_tokens", policy, f"{found.error}{where}")
    under = ctx.results.get("undertrained")
    scores = under.data.get("scores") if under is not None else None
    if under is None or scores is None:
        why = "is turned off by the policy" if under is None else f"could not score rows ({under.reason})"
        return na("template_tokens", policy, f"the template emits {len(found.emitted)} special tokens, but the "
                                             f"under-trained check {why}, so they cannot be scored")
    flagged = set(under.ids)
    candidates = set(int(i) for i in under.data["candidates"]["id"])
    # A row whose norm is far below the bulk looks untrained whatever the indicator: the cosine indicator of
    # tied tables does not see a row that kept its direction and lost its length.
    zt = policy.num("undertrained", "z")
    norm_z = np.full(len(m), np.nan)
    norm_z[scan.good], _, _ = robust_z(np.log(scan.norms[scan.good]))

    def broken(t: TemplateToken) -> bool:
        return not scan.good[t.id] or bool(norm_z[t.id] < -zt)

    def untrained(t: TemplateToken) -> bool:
        return t.id in flagged or broken(t)

    # An emitted token whose row is zero, not finite or far short of the bulk fails. One that only the
    # under-trained indicator flags warns: the unembedding-cosine indicator of small tied models puts chat
    # tokens that every answer uses (SmolLM2-135M-Instruct's <|im_start|>, <|im_end|>) next to the unused
    # tokens, and a released model that chats fine must not fail its gate on that alone.
    bad_emitted = [t for t in found.emitted if broken(t)]
    flagged_emitted = [t for t in found.emitted if untrained(t) and not broken(t)]
    bad_unused = [t for t in found.unused if untrained(t)]
    every = [("emitted", t) for t in found.emitted] + [("declared, never emitted", t) for t in found.unused]
    near = _neighbors(m, [t.id for _, t in every], scan.good, int(policy.num("template_tokens", "neighbours")))
    table = pd.DataFrame({
        "token": [t.token for _, t in every], "id": [t.id for _, t in every], "role": [r for r, _ in every],
        "count": [t.count for _, t in every], "score": [float(scores[t.id]) for _, t in every],
        "norm": [float(scan.norms[t.id]) for _, t in every], "norm z": [float(norm_z[t.id]) for _, t in every],
        "candidate": [t.id in candidates for _, t in every], "under-trained": [untrained(t) for _, t in every],
        "neighbours": [near.get(t.id, "—") for _, t in every]},
        columns=["token", "id", "role", "count", "score", "norm", "norm z", "candidate", "under-trained",
                 "neighbours"])
    status: Status = ("fail" if len(bad_emitted) > policy.num("template_tokens", "max_untrained_emitted") else
              "warn" if flagged_emitted or len(bad_unused) > policy.num("template_tokens", "max_untrained_unused")
              else "pass")
    src = f"the chat template ({found.source}) on a {'three' if found.notes else 'four'}-turn conversation"
    parts = [f"{src} emits {len(found.emitted)} special tokens"]
    if bad_emitted:
        parts.append(f"{len(bad_emitted)} of them under-trained: {', '.join(t.token for t in bad_emitted[:10])}"
                     + (" …" if len(bad_emitted) > 10 else "") + " (fine-tuning on this format would push "
                     "gradients through rows training never moved)")
    if flagged_emitted:
        parts.append(f"{len(flagged_emitted)} flagged by the under-trained indicator alone (rows of ordinary "
                     f"length): {', '.join(t.token for t in flagged_emitted[:10])}")
    if not bad_emitted and not flagged_emitted:
        parts.append("none of them under-trained")
    parts.append(f"{len(found.unused)} declared special tokens appear in no encoding"
                 + (f", {len(bad_unused)} of them with an untrained-looking row" if bad_unused else ""))
    reason = "; ".join(parts) + "".join(f"; {n}" for n in found.notes)
    evidence = bad_emitted + flagged_emitted + bad_unused
    return Check("template_tokens", status, float(len(bad_emitted)), pol, reason,
                 tuple(t.token for t in evidence), tuple(t.id for t in evidence),
                 data={"rows": table, "rendered": found.rendered, "source": found.source})


SPEC = register(CheckSpec(
    id="template_tokens", title="Chat-template tokens", unit="emitted tokens under-trained",
    premise="Every fine-tuning example in a chat format holds its template's special tokens; a token whose row "
            "training never moved gives exploding gradients (reported for Llama 3.1's reserved tokens and "
            "Mistral Nemo). Holds for models with a chat template; declared special tokens that nothing emits "
            "only warn.",
    defaults={"max_untrained_emitted": 0, "max_untrained_unused": 0, "neighbours": 5},
    rules={"max_untrained_emitted": number(0, _INF, True), "max_untrained_unused": number(0, _INF, True),
           "neighbours": number(0, 50, True)},
    run=run, order=90, step=90, weight=0.05, label="chat-template tokens",
))
