"""Under-trained tokens, after Land & Bartolo (2024), "Fishing for Magikarp".

The indicator follows their recommendation for each kind of table (:func:`indicator`): for an input table
that is not tied to the output, the row's L2 norm; for a tied table or an output (unembedding) table, the
cosine distance to the mean of known-unused reference rows after removing the first principal component.
Reference tokens come from the tokenizer alone (:func:`~core.audit.categories.token_categories`). The scorer
never looks at token names. Candidates are the lowest ``fraction`` of scores; those that stand apart from
the bulk (robust z below ``-z``) make the value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from core._threads import one_blas_thread
from core.audit._context import Context
from core.audit._shared import (
    Scan,
    dropped_note,
    histogram,
    na,
    robust_z,
    row_chunks,
    status_above,
    tokens_of,
    top_directions,
)
from core.audit._spec import CheckSpec, register
from core.audit.categories import token_categories
from core.audit.policy import number
from core.audit.result import Check
from core.matrix import EmbeddingMatrix

_INF = float("inf")
#: Tensor names of output (unembedding) tables.
OUTPUT_TENSORS = ("lm_head.weight", "output.weight", "embed_out.weight")
_EMPTY: dict[str, list[object]] = {"token": [], "id": [], "score": [], "z": [], "category": [], "kind": []}


def indicator(m: EmbeddingMatrix) -> tuple[str, str]:
    """Which Magikarp indicator fits ``m``'s table, from its provenance, and why.

    Returns:
        ("cosine", why) for a tied table or an output (unembedding) table; ("norm", why) for an input table
        that is untied or not known to be tied.
    """
    tensor = m.provenance.tensor or ""
    if tensor in OUTPUT_TENSORS or tensor.endswith(".lm_head.weight"):
        return "cosine", f"output embeddings ({tensor})"
    if m.provenance.tied:
        return "cosine", "tied embeddings"
    return "norm", "input embeddings, untied" if m.provenance.tied is False else "input embeddings"


def _rows64(m: EmbeddingMatrix, rows: np.ndarray | slice, drop: Sequence[int] = ()) -> np.ndarray:
    x = np.asarray(m.vectors[rows], dtype=np.float64)
    if drop:
        x[:, list(drop)] = 0.0
    return x


def _first_pc(m: EmbeddingMatrix, rows: np.ndarray, rng: np.random.Generator, drop: Sequence[int] = ()) -> np.ndarray:
    """First principal component (centred, as in PCA) of the given rows; a seeded sample when many."""
    cap = max(2, (1 << 24) // max(1, m.dim))
    pick = rows if rows.size <= cap else np.sort(rng.choice(rows, cap, replace=False))
    x = _rows64(m, pick, drop)
    x -= x.mean(axis=0)
    if m.dim <= 2048:
        cov = x.T @ x
        with one_blas_thread():
            _, vecs = np.linalg.eigh(cov)
        pc = vecs[:, -1]
    else:
        pc = top_directions(x.astype(np.float32), 1, rng, iters=10)[0].astype(np.float64)
    return np.asarray(pc / np.linalg.norm(pc))


def _tied_scores(m: EmbeddingMatrix, scan: Scan, refs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cosine distance of every good row to the mean reference row, first principal component removed."""
    good = np.flatnonzero(scan.good)
    pc = _first_pc(m, good, rng, scan.dropped)
    ref = _rows64(m, refs, scan.dropped)
    ref -= np.outer(ref @ pc, pc)
    mu = ref.mean(axis=0)
    mu_norm = float(np.linalg.norm(mu))
    scores = np.full(len(m), np.nan)
    w = np.stack([pc, mu], axis=1)
    for s, e in row_chunks(len(m), m.dim):
        proj = _rows64(m, slice(s, e), scan.dropped) @ w
        # mu is orthogonal to pc, so (x - (x.pc) pc).mu = x.mu
        resid = np.sqrt(np.maximum(scan.norms[s:e] ** 2 - proj[:, 0] ** 2, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = proj[:, 1] / np.maximum(resid * mu_norm, 1e-12)
        scores[s:e] = 1.0 - cos
    scores[~scan.good] = np.nan
    return scores



def run(ctx: Context) -> Check:
    m, scan, policy, rng = ctx.m, ctx.norm_scan, ctx.policy, ctx.rng
    pol = policy.section("undertrained")
    empty = pd.DataFrame(_EMPTY)
    idx = np.flatnonzero(scan.good)
    min_rows = int(policy.num("undertrained", "min_rows"))
    if idx.size < min_rows:
        return na("undertrained", policy, f"{idx.size} finite non-zero rows; scoring needs at least {min_rows}",
                  candidates=empty, method="")
    cats = token_categories(m, ctx.stage)
    # partial UTF-8 byte tokens only ever occur inside whole characters: reported apart (partial_utf8)
    idx = idx[cats[idx] != "undecodable"]
    refs = np.flatnonzero(((cats == "unreachable") | (cats == "declared-unused")) & scan.good)
    kind, table_kind = indicator(m)
    cosine = kind == "cosine" and refs.size > 0
    if cosine:
        method = (f"{table_kind}: cosine distance to the mean of {refs.size} reference tokens with the first "
                  "principal component removed (lowest first)")
        scores = _tied_scores(m, scan, refs, rng)
        s = scores[idx]
    else:
        method = "input-embedding L2 norm (lowest first)"
        if kind == "cosine":
            method += (f"; the matrix holds {table_kind} but the tokenizer gives no reference tokens, so the norm "
                       "is used")
        scores = scan.norms.copy()
        s = np.log(scores[idx])
    z, _med, mad = robust_z(s)
    if mad < 1e-6:
        return na("undertrained", policy, "every row scores the same (e.g. an L2-normalised matrix); the "
                                          f"indicator ({method}) cannot separate under-trained rows",
                  candidates=empty, method=method)
    frac = policy.num("undertrained", "fraction")
    k = max(1, math.ceil(frac * idx.size))
    order = np.argsort(scores[idx], kind="stable")[:k]
    cand = idx[order]
    cz = z[order]
    kinds = m.kinds
    table = pd.DataFrame({"token": tokens_of(m, cand), "id": cand, "score": scores[cand], "z": cz,
                          "category": cats[cand].astype(str), "kind": [kinds[i] for i in cand]})
    zt = policy.num("undertrained", "z")
    flagged = cand[cz < -zt]
    value = flagged.size / idx.size
    status = status_above(value, policy.num("undertrained", "warn_above"), policy.num("undertrained", "fail_above"))
    n_ref_cand = int(np.isin(cand, refs).sum())
    reason = (f"{flagged.size} of the {k} lowest-scoring tokens ({frac:.0%}) stand apart from the rest "
              f"(robust z < -{zt:g}) on the {method.split(' (')[0]}; {refs.size} reference tokens found from the "
              f"tokenizer, {n_ref_cand} of them among the candidates")
    if not flagged.size:
        reason = (f"no token stands apart (robust z < -{zt:g}) on the {method.split(' (')[0]}; "
                  f"the {k} lowest are listed as candidates")
    reason += dropped_note(scan)
    cutoff = float(scores[cand[-1]])
    hist = histogram(scores[idx])
    hist["candidate"] = hist["start"] <= cutoff
    check = Check("undertrained", status, value, pol, reason, tokens_of(m, flagged), tuple(int(i) for i in flagged),
                  data={"histogram": hist, "cutoff": cutoff, "candidates": table, "method": method,
                        "references": int(refs.size),
                        "xlabel": "cosine distance to unused mean" if cosine else "L2 norm",
                        # every row's score and category, for checks that score particular tokens
                        "scores": scores, "categories": cats, "z_cut": zt})
    return check


SPEC = register(CheckSpec(
    id="undertrained", title="Under-trained tokens", unit="fraction of rows",
    premise="Tokens that training never saw keep rows near their initialisation (Land & Bartolo 2024): low "
            "input-embedding norms, or for tied embeddings rows close to known-unused tokens. Holds for "
            "model vocabularies; static word vectors only keep words seen in training, so it rarely fires.",
    defaults={"fraction": 0.02, "z": 5.0, "warn_above": 0.0, "fail_above": 1.0, "min_rows": 50},
    rules={"fraction": number(0, 1, lo_open=True), "z": number(0, _INF, lo_open=True), "warn_above": number(0, 1),
           "fail_above": number(0, 1), "min_rows": number(3, _INF, True)},
    run=run, order=40, step=50, weight=0.2, label="finding unreachable tokens",
))
