"""Norm vs frequency: Spearman correlation between row norm and word frequency (``wordfreq`` in ``language``),
or the file's own order for word2vec/GloVe vocabularies, which are sorted by frequency."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core._status import Status
from core._wordfreq import word_lists
from core.audit._context import Context
from core.audit._shared import dropped_note, na, tokens_of
from core.audit._spec import CheckSpec, register
from core.audit.policy import choice, language, number
from core.audit.result import Check
from core.tokens import strip_marker

_INF = float("inf")
_ORDERED_FORMATS = ("word2vec-text", "word2vec-binary", "glove")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = pd.Series(a).rank().to_numpy(dtype=np.float64, copy=True)
    rb = pd.Series(b).rank().to_numpy(dtype=np.float64, copy=True)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra @ ra) * (rb @ rb)))
    return float(ra @ rb) / den if den > 0 else 0.0



def run(ctx: Context) -> Check:
    m, scan, policy, rng = ctx.m, ctx.norm_scan, ctx.policy, ctx.rng
    pol = policy.section("norm_frequency")
    source = str(policy.get("norm_frequency", "source"))
    lang = str(policy.get("norm_frequency", "language"))
    min_words = int(policy.num("norm_frequency", "min_words"))
    kinds = m.kinds
    scheme = m.tokenizer.scheme
    words = np.array([i for i, k in enumerate(kinds) if k == "word" and scan.good[i]], dtype=np.int64)
    how = ""
    freq = np.zeros(0)
    ids = np.zeros(0, dtype=np.int64)
    coverage = 0.0
    if source in ("auto", "wordfreq") and words.size:
        with word_lists() as wordfreq:
            table = wordfreq.get_frequency_dict(lang)
            keys = m.index_to_key
            f = np.array([table.get(strip_marker(keys[i], scheme)[0].casefold(), 0.0) for i in words])
            del table
        known = f > 0
        coverage = float(known.mean())
        if known.sum() >= min_words and coverage >= policy.num("norm_frequency", "min_coverage"):
            ids, freq = words[known], np.log10(f[known]) + 9.0  # the Zipf scale of wordfreq.zipf_frequency
            how = f"wordfreq ({lang}), {ids.size} words ({coverage:.0%} of word tokens)"
    if not how and (source == "order" or (source == "auto" and m.provenance.format in _ORDERED_FORMATS)):
        ids = np.flatnonzero(scan.good)
        freq = -ids.astype(np.float64)  # word2vec/GloVe files list the most frequent words first
        how = f"the file's own order ({ids.size} rows, most frequent first)"
    if not how:
        why = ("the vocabulary has no word tokens" if not words.size else
               f"only {coverage:.0%} of the {words.size} word tokens are in wordfreq's {lang!r} list"
               if coverage < policy.num("norm_frequency", "min_coverage") else
               f"only {int(coverage * words.size)} word tokens have a frequency (needs {min_words})")
        return na("norm_frequency", policy, f"{why}, and the file order is not a frequency order; set "
                                             "norm_frequency.language or source = 'order' in a policy")
    if ids.size < min_words:
        return na("norm_frequency", policy, f"{ids.size} words with a frequency; needs at least {min_words}")
    norms = scan.norms[ids]
    rho = _spearman(norms, freq)
    warn_below = policy.num("norm_frequency", "warn_below")
    status: Status = "warn" if rho < warn_below else "pass"
    pick = np.arange(ids.size) if ids.size <= 4000 else np.sort(rng.choice(ids.size, 4000, replace=False))
    points = pd.DataFrame({"token": tokens_of(m, ids[pick]), "frequency": freq[pick], "norm": norms[pick]})
    evidence: list[int] = []
    if status == "warn":
        # The most frequent words with the smallest norms show the reversal.
        top = np.argsort(-freq, kind="stable")[: max(10, ids.size // 10)]
        evidence = [int(ids[i]) for i in top[np.argsort(norms[top], kind="stable")[:10]]]
    reason = (f"Spearman rho {rho:+.2f} between row norm and frequency from {how}; "
              + ("trained embeddings give frequent words larger norms, so a reversal suggests rows and vocabulary "
                 "are out of step" if status == "warn" else
                 "frequent words have larger norms, as training leaves them" if rho > 0.2 else
                 "norms do not follow frequency")) + dropped_note(scan)
    return Check("norm_frequency", status, rho, pol, reason, tokens_of(m, evidence), tuple(evidence),
                 data={"points": points, "source": how,
                       "xlabel": "Zipf frequency" if how.startswith("wordfreq") else "-(row in file)"})



def _why_not(family: str, source: str) -> str:
    return (f"the model is {'a ' + family if family != 'unknown' else 'of unknown family'} ({source}); "
            "frequent words get larger norms in word2vec-style vectors and encoder input embeddings, not in "
            "decoder language models (set [model] family in a policy if the family is wrong)")


SPEC = register(CheckSpec(
    id="norm_frequency", title="Norm vs frequency", unit="Spearman rho",
    premise="Frequent words have larger norms: true of word2vec-style vectors (Schakel & Wilson 2015) "
            "and of encoder (masked-LM) input embeddings such as BERT's, so a reversal there suggests rows "
            "and vocabulary out of step. Decoder language models do not follow it (SmolLM2: Spearman "
            "-0.65), so for them, and for models of unknown family, the check does not apply.",
    defaults={"warn_below": -0.2, "language": "en", "source": "auto", "min_words": 100, "min_coverage": 0.5},
    rules={"warn_below": number(-1, 1), "language": language, "source": choice("auto", "wordfreq", "order"),
           "min_words": number(3, _INF, True), "min_coverage": number(0, 1)},
    run=run, order=70, step=70, weight=0.05, label="norm vs frequency",
    families=frozenset({"static", "encoder"}), why_not=_why_not,
))
