"""Health by script: the share of under-trained candidates among each Unicode script's tokens (Latin, Cyrillic,
CJK, Arabic, ...), so a team sees which languages a release short-changes."""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np
import pandas as pd

from core.audit._context import Context
from core.audit._shared import na, status_above
from core.audit._spec import CheckSpec, register
from core.audit.policy import number
from core.audit.result import Check
from core.tokens import strip_marker

#: Script names as the report shows them, from the first word of a letter's Unicode name.
_SCRIPTS = {
    "LATIN": "Latin", "CYRILLIC": "Cyrillic", "GREEK": "Greek", "ARABIC": "Arabic", "HEBREW": "Hebrew",
    "CJK": "CJK", "HIRAGANA": "Japanese kana", "KATAKANA": "Japanese kana", "HANGUL": "Hangul",
    "DEVANAGARI": "Devanagari", "BENGALI": "Bengali", "TAMIL": "Tamil", "TELUGU": "Telugu", "THAI": "Thai",
    "ARMENIAN": "Armenian", "GEORGIAN": "Georgian", "ETHIOPIC": "Ethiopic", "GUJARATI": "Gujarati",
    "GURMUKHI": "Gurmukhi", "KANNADA": "Kannada", "MALAYALAM": "Malayalam", "SINHALA": "Sinhala",
    "KHMER": "Khmer", "LAO": "Lao", "MYANMAR": "Myanmar", "TIBETAN": "Tibetan", "MONGOLIAN": "Mongolian",
}


def script_of(text: str) -> str:
    """The main script of ``text``: the most common script among its letters; "Digits", "Symbols" or "Other"
    when it has no letter."""
    counts: Counter[str] = Counter()
    digits = symbols = 0
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("L"):
            counts[_SCRIPTS.get(unicodedata.name(ch, "").split(" ", 1)[0], "Other letters")] += 1
        elif cat == "Nd":
            digits += 1
        elif cat[0] in "PSZ" or ch == "\ufffd":
            symbols += 1
    if counts:
        return counts.most_common(1)[0][0]
    return "Digits" if digits else ("Symbols" if symbols else "Other")


def run(ctx: Context) -> Check:
    m, policy = ctx.m, ctx.policy
    under = ctx.results.get("undertrained")
    cand = under.data.get("candidates") if under is not None else None
    if cand is None or under is None or under.status == "n/a":
        return na("scripts", policy, "the under-trained check did not score rows, so there is nothing to split "
                                     "by script")
    scheme = m.tokenizer.scheme
    special = m.tokenizer.special_tokens
    decode = m.has_tokenizer and scheme == "bytelevel-bpe"
    rows = len(m) if m.unassigned_from is None else m.unassigned_from
    scripts = np.empty(rows, dtype=object)
    for i in range(rows):
        t = m.index_to_key[i]
        scripts[i] = "Special" if t in special else script_of(
            m.tokenizer.decode([i]) if decode else strip_marker(t, scheme)[0])
    bad = np.asarray([int(i) for i in cand["id"] if int(i) < rows], dtype=np.int64)
    totals = Counter(scripts.tolist())
    under_by = Counter(scripts[bad].tolist()) if bad.size else Counter()
    table = pd.DataFrame({"script": list(totals), "tokens": list(totals.values()),
                          "under-trained": [under_by[s] for s in totals]})
    table["share"] = table["under-trained"] / table["tokens"]
    table = table.sort_values(["share", "tokens"], ascending=[False, False], ignore_index=True)
    overall = bad.size / max(1, rows)
    # scripts with enough tokens to say something, compared with the candidates' share overall
    min_tokens = int(policy.num("scripts", "min_tokens"))
    big = table[(table["tokens"] >= min_tokens) & table["script"].isin(set(_SCRIPTS.values()))]
    worst = big.iloc[0] if len(big) else None
    ratio = float(worst["share"] / overall) if worst is not None and overall > 0 else 0.0
    status = status_above(ratio, policy.num("scripts", "warn_above"), policy.num("scripts", "fail_above"))
    reason = "no script has enough tokens to compare" if worst is None else (
        f"{worst['script']} has the largest share of under-trained candidates: {worst['share']:.1%} of its "
        f"{int(worst['tokens']):,} tokens, {ratio:.1f}× the {overall:.1%} of the whole vocabulary")
    shown = tuple(str(s) for s in big["script"].head(5)) if worst is not None else ()
    return Check("scripts", status, ratio, policy.section("scripts"), reason, shown, data={"rows": table})


SPEC = register(CheckSpec(
    id="scripts", title="Health by script", unit="worst script's share ÷ the vocabulary's",
    premise="Under-trained tokens cluster in the writing systems the training data short-changed (Land & Bartolo "
            "2024). Holds for multilingual vocabularies; a script with few tokens says little, hence min_tokens.",
    defaults={"warn_above": 5.0, "fail_above": 1e9, "min_tokens": 50},
    rules={"warn_above": number(0, 1e12), "fail_above": number(0, 1e12), "min_tokens": number(1, 1e9, True)},
    run=run, order=97, step=97, weight=0.01, label="health by script",
))
