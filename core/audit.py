"""Health audit of an embedding matrix: eight checks, each pass / warn / fail / n/a, with the tokens that prove it.

    >>> import core
    >>> from core.audit import audit, Policy
    >>> report = audit(core.load("demo"))                   # all-MiniLM-L6-v2, a healthy model
    >>> [(c.id, c.status) for c in report.checks][:3]
    [('numerical', 'pass'), ('duplicates', 'pass'), ('norm_outliers', 'warn')]
    >>> report.reaches("fail")                               # what `embedscope audit --fail-on fail` gates on
    False
    >>> report.undertrained.head(3)[["token", "score"]]      # lowest input-embedding norms first
    >>> report = audit(m, Policy.load("release.toml"))       # thresholds from a TOML policy file

The checks, in order (:data:`CHECKS`):

``numerical``
    rows holding NaN or Inf, and all-zero rows (zero padding rows past the tokenizer are left out). Fail.
``duplicates``
    rows exactly equal to another (fail), and groups of rows with cosine above ``cosine`` (warn), found by
    an exact chunked search: a cheap upper bound on every pair's cosine from a 64-dimension projection plus
    the residual norms, then the exact cosine for the few pairs the bound cannot rule out.
``norm_outliers``
    rows whose L2 norm is far out in either tail: robust z-score (median / MAD) of the log norm.
``undertrained``
    after Land & Bartolo (2024), "Fishing for Magikarp": for input embeddings (untied or unknown) the score
    is the row's L2 norm; for tied embeddings it is the cosine distance to the mean of known-unused
    reference rows after removing the first principal component. Reference tokens come from the tokenizer
    alone: tokens that no encoding of their own decoded text reproduces, and special tokens the tokenizer
    files declare but give no role. The scorer never looks at token names. Candidates are the lowest
    ``fraction`` of scores; those that stand apart from the bulk (robust z below ``-z``) make the value.
``anisotropy``
    mean cosine over all pairs of distinct rows (exact, in closed form from the sum of the unit rows), the
    norm of the mean vector relative to the mean norm, and the distribution of cosines on a seeded sample.
``rogue_dimensions``
    after Timkey & van Schijndel (2021): each dimension's share of the expected cosine of random pairs,
    E[cos] = sum_i E[u_i v_i], and of the expected squared cosine (which also catches a centred dimension
    that decides every cosine's sign without moving the mean). A dimension over ``fail_above`` swamps
    every cosine.
``norm_frequency``
    Spearman correlation between row norm and word frequency (``wordfreq`` in ``language``), or the file's
    own order for word2vec/GloVe vocabularies, which are sorted by frequency.
``tokenizer``
    for model tokenizers: ids the tokenizer can produce that have no row (fail), special tokens without a
    row (fail), rows no token reaches (warn past ``max_extra_fraction``), config ``vocab_size`` vs rows.

Statuses are made for release gates: a healthy trained model passes or warns (under-trained reserved
tokens and a tail of small norms are warnings); ``fail`` is for damage that hurts users; a seeded Gaussian
matrix passes everything. A matrix too small for a statistic gets "n/a" with the reason.

Each check rests on a premise (:data:`PREMISES`, shown beside it on the page, in ``embedscope audit --help``
and in the report) that holds for some kinds of model only. The audit first finds the model's family
(:func:`core._family.model_family`: "static" word vectors from a word2vec/GloVe file, an "encoder" or a
"decoder" from config.json's ``architectures``/``model_type``, else "unknown"; ``[model] family`` in a policy
overrides it), and a check whose premise does not hold says "n/a" with the reason and what it measured:
norm vs frequency applies to static vectors and encoders only, anisotropy and rogue dimensions not to
static vectors. On the default policy MiniLM (encoder), SmolLM2-135M (decoder) and gensim's word2vec test
vectors (static) all pass ``--fail-on fail``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core._family import FAMILIES, model_family
from core._numfmt import distinct
from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.tokens import strip_marker

if TYPE_CHECKING:
    import altair as alt

#: Check ids, in report order.
CHECKS = ("numerical", "duplicates", "norm_outliers", "undertrained", "anisotropy", "rogue_dimensions",
          "norm_frequency", "tokenizer")
#: What the page and the report call each check.
TITLES = {
    "numerical": "Numerical damage", "duplicates": "Duplicate rows", "norm_outliers": "Norm outliers",
    "undertrained": "Under-trained tokens", "anisotropy": "Anisotropy", "rogue_dimensions": "Rogue dimensions",
    "norm_frequency": "Norm vs frequency", "tokenizer": "Tokenizer consistency",
}
STATUSES = ("pass", "warn", "fail", "n/a")
_SEVERITY = {"n/a": 0, "pass": 0, "warn": 1, "fail": 2}

PolicyValue = float | int | str | bool

#: Default thresholds; a policy file overrides any of them, section by section (``[duplicates] cosine = 0.9995``).
DEFAULTS: dict[str, dict[str, PolicyValue]] = {
    "numerical": {"enabled": True, "warn_above": 0, "fail_above": 0},
    "duplicates": {"enabled": True, "cosine": 0.999, "max_exact_groups": 0, "max_near_groups": 0},
    "norm_outliers": {"enabled": True, "z": 5.0, "warn_above": 0.0, "fail_above": 1.0, "min_rows": 20},
    "undertrained": {"enabled": True, "fraction": 0.02, "z": 5.0, "warn_above": 0.0, "fail_above": 1.0,
                     "min_rows": 50},
    "anisotropy": {"enabled": True, "warn_above": 0.5, "fail_above": 0.95, "sample": 2000, "seed": 0,
                   "min_rows": 10},
    "rogue_dimensions": {"enabled": True, "warn_above": 0.2, "fail_above": 0.5, "handful": 3,
                         "min_mean_cosine": 0.05, "min_dims": 8, "min_rows": 10},
    "norm_frequency": {"enabled": True, "warn_below": -0.2, "language": "en", "source": "auto",
                       "min_words": 100, "min_coverage": 0.5},
    "tokenizer": {"enabled": True, "max_missing": 0, "max_extra_fraction": 0.05},
    # Not a check: what kind of model the matrix comes from, which decides where a check's premise holds.
    "model": {"family": "auto"},
}

#: What each check assumes, and where that holds (the help text of the page, the CLI and the report).
PREMISES = {
    "numerical": "A NaN, Inf or all-zero row breaks every similarity it enters, in every kind of model.",
    "duplicates": "Two trained tokens with the same row cannot be told apart, which points to a copy or merge bug. "
                  "Rows of never-trained tokens that training left at one point are not that: when every row "
                  "of an equal group is an under-trained token, the group is a warning.",
    "norm_outliers": "Trained rows have log norms in one bulk; rows far outside it are worth a look. A tail of "
                     "small norms (rare or unused tokens) is common, so by default this only warns.",
    "undertrained": "Tokens that training never saw keep rows near their initialisation (Land & Bartolo 2024): low "
                    "input-embedding norms, or for tied embeddings rows close to known-unused tokens. Holds for "
                    "model vocabularies; static word vectors only keep words seen in training, so it rarely fires.",
    "anisotropy": "A high mean cosine between rows means a common direction inflates every similarity, the "
                  "degeneration reported for transformer token embeddings (Gao et al. 2019, Ethayarajh 2019). "
                  "Static word2vec-style vectors lie in a narrow cone by construction of negative sampling "
                  "(Mimno & Thompson 2017), so for them the check does not apply.",
    "rogue_dimensions": "A few dimensions that carry most of the cosine between random rows swamp every similarity "
                        "(Timkey & van Schijndel 2021, for transformer models). Static word vectors share the "
                        "common direction of their cone by construction, so for them the check does not apply.",
    "norm_frequency": "Frequent words have larger norms: true of word2vec-style vectors (Schakel & Wilson 2015) "
                      "and of encoder (masked-LM) input embeddings such as BERT's, so a reversal there suggests rows "
                      "and vocabulary out of step. Decoder language models do not follow it (SmolLM2: Spearman "
                      "-0.65), so for them, and for models of unknown family, the check does not apply.",
    "tokenizer": "Every id the tokenizer can produce needs a row. Added placeholders past the table (Gemma 3's "
                 "<image_soft_token>) are swapped for other vectors before the lookup, so they are a warning; a "
                 "regular vocabulary token without a row is a failure.",
}

#: What each check's value measures.
UNITS = {
    "numerical": "rows", "duplicates": "groups", "norm_outliers": "fraction of rows",
    "undertrained": "fraction of rows", "anisotropy": "mean cosine", "rogue_dimensions": "largest share",
    "norm_frequency": "Spearman rho", "tokenizer": "ids without a row",
}


# -- policy ---------------------------------------------------------------------------------------------
def _number(lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> Callable[[object], PolicyValue]:
    kind = "a whole number" if integer else "a number"
    left = "(" if lo_open else "["
    rule = f"must be {kind} in {left}{lo:g}, {hi:g}]" if math.isfinite(hi) else (
        f"must be {kind} {'>' if lo_open else '≥'} {lo:g}")

    def check(v: object) -> PolicyValue:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            raise ValueError(rule)
        x = float(v)
        if not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo):
            raise ValueError(rule)
        return int(v) if integer else x

    return check


def _boolean(v: object) -> PolicyValue:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _choice(*options: str) -> Callable[[object], PolicyValue]:
    def check(v: object) -> PolicyValue:
        if v not in options:
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return str(v)

    return check


def _language(v: object) -> PolicyValue:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a language code such as 'en'")
    try:
        from wordfreq import available_languages

        langs = available_languages()
    except ImportError:  # pragma: no cover - wordfreq is a dependency
        return v.strip()
    if v.strip() not in langs:
        raise ValueError(f"wordfreq has no list for {v!r}; languages: {', '.join(sorted(langs))}")
    return v.strip()


_INF = math.inf
_RULES: dict[str, dict[str, Callable[[object], PolicyValue]]] = {
    "numerical": {"enabled": _boolean, "warn_above": _number(0, _INF, True), "fail_above": _number(0, _INF, True)},
    "duplicates": {"enabled": _boolean, "cosine": _number(0, 1, lo_open=True),
                   "max_exact_groups": _number(0, _INF, True), "max_near_groups": _number(0, _INF, True)},
    "norm_outliers": {"enabled": _boolean, "z": _number(0, _INF, lo_open=True), "warn_above": _number(0, 1),
                      "fail_above": _number(0, 1), "min_rows": _number(3, _INF, True)},
    "undertrained": {"enabled": _boolean, "fraction": _number(0, 1, lo_open=True),
                     "z": _number(0, _INF, lo_open=True), "warn_above": _number(0, 1), "fail_above": _number(0, 1),
                     "min_rows": _number(3, _INF, True)},
    "anisotropy": {"enabled": _boolean, "warn_above": _number(-1, 1), "fail_above": _number(-1, 1),
                   "sample": _number(10, 50_000, True), "seed": _number(0, 2**32 - 1, True),
                   "min_rows": _number(2, _INF, True)},
    "rogue_dimensions": {"enabled": _boolean, "warn_above": _number(0, 1), "fail_above": _number(0, 1),
                         "handful": _number(1, 1000, True), "min_mean_cosine": _number(0, 1),
                         "min_dims": _number(2, _INF, True), "min_rows": _number(2, _INF, True)},
    "norm_frequency": {"enabled": _boolean, "warn_below": _number(-1, 1), "language": _language,
                       "source": _choice("auto", "wordfreq", "order"), "min_words": _number(3, _INF, True),
                       "min_coverage": _number(0, 1)},
    "tokenizer": {"enabled": _boolean, "max_missing": _number(0, _INF, True),
                  "max_extra_fraction": _number(0, 1)},
    "model": {"family": _choice("auto", *FAMILIES)},
}


@dataclass(frozen=True)
class Policy:
    """Thresholds for every check: the defaults, with the overrides a policy file gives.

    Hashable, so a page can cache an audit per (matrix, policy).
    """

    overrides: tuple[tuple[str, str, PolicyValue], ...] = ()
    source: str = "defaults"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read a TOML policy file.

        Raises:
            ParameterError: the file cannot be read, is not TOML, names an unknown check or setting, or
                gives a bad value; the message names the file and the key.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ParameterError(f"policy file {p}: cannot be read ({err}); give a UTF-8 TOML file") from err
        return cls.from_toml(text, str(p))

    @classmethod
    def from_toml(cls, text: str, where: str = "policy") -> Policy:
        """A policy from TOML text; ``where`` names it in errors."""
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ParameterError(f"policy file {where}: not valid TOML ({err})") from err
        return cls.from_mapping(data, where)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], where: str = "policy") -> Policy:
        """A policy from ``{check: {setting: value}}``.

        Raises:
            ParameterError: an unknown check or setting, or a value that breaks its rule (naming the key).
        """
        items: list[tuple[str, str, PolicyValue]] = []
        for check, section in data.items():
            if check not in _RULES:
                raise ParameterError(f"policy {where}: unknown check {check!r}; the checks are "
                                     f"{', '.join(CHECKS)} (and [model] family)")
            if not isinstance(section, Mapping):
                raise ParameterError(f"policy {where}: {check!r} must be a table ([{check}] with settings)")
            for key, value in section.items():
                rule = _RULES[check].get(key)
                if rule is None:
                    raise ParameterError(f"policy {where}: unknown setting {check}.{key}; settings of [{check}]: "
                                         f"{', '.join(_RULES[check])}")
                try:
                    items.append((check, key, rule(value)))
                except ValueError as err:
                    raise ParameterError(f"policy {where}: {check}.{key} = {value!r} {err}") from err
        return cls(tuple(sorted(items)), where)

    def section(self, check: str) -> dict[str, PolicyValue]:
        """Every setting of ``check``, defaults filled in."""
        out = dict(DEFAULTS[check])
        out.update({k: v for c, k, v in self.overrides if c == check})
        return out

    def get(self, check: str, key: str) -> PolicyValue:
        return self.section(check)[key]

    def num(self, check: str, key: str) -> float:
        v = self.get(check, key)
        assert isinstance(v, (int, float))
        return float(v)

    @property
    def digest(self) -> str:
        """A short id of the settings (for caches and the report)."""
        return hashlib.blake2b(repr(self.overrides).encode(), digest_size=6).hexdigest()

    def to_toml(self) -> str:
        """The full policy (defaults and overrides) as TOML, ready to edit and pass back with ``--policy``."""
        lines = [f"# Embedscope audit policy ({self.source})"]
        for check in (*CHECKS, "model"):
            lines.append(f"\n[{check}]")
            for k, v in self.section(check).items():
                val = ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)
                lines.append(f"{k} = {val}")
        return "\n".join(lines) + "\n"


# -- results --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """The result of one check.

    Attributes:
        id: one of :data:`CHECKS`.
        status: "pass", "warn", "fail" or "n/a".
        value: the measured number the status comes from (see :data:`UNITS`), or None when n/a.
        threshold: the policy settings the status was decided with.
        tokens: the evidence: the tokens that show the problem (all of them; the JSON keeps the first 200).
        ids: their rows.
        reason: one sentence saying why the status is what it is.
        dims: for rogue dimensions, the flagged dimensions.
        data: small tables for the charts and the report (pandas DataFrames and numbers).
    """

    id: str
    status: str
    value: float | None
    threshold: dict[str, PolicyValue]
    reason: str
    tokens: tuple[str, ...] = ()
    ids: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def title(self) -> str:
        return TITLES[self.id]

    @property
    def unit(self) -> str:
        return UNITS[self.id]

    @property
    def premise(self) -> str:
        """What the check assumes, and for which models that holds."""
        return PREMISES[self.id]

    def to_json(self, max_tokens: int = 200) -> dict[str, Any]:
        """The ``checks[]`` entry of ``embedscope audit --json``."""
        out: dict[str, Any] = {
            "id": self.id, "status": self.status, "value": _finite(self.value), "threshold": dict(self.threshold),
            "tokens": list(self.tokens[:max_tokens]), "title": self.title, "unit": self.unit,
            "reason": self.reason, "count": len(self.tokens), "ids": list(self.ids[:max_tokens]),
            "premise": self.premise,
        }
        if self.id == "rogue_dimensions":
            out["dims"] = list(self.dims)
        return out


@dataclass(frozen=True)
class AuditReport:
    """Every check's result for one matrix, with the under-trained candidates.

    Attributes:
        source: what was audited (the path, or "demo").
        shape: rows × dimensions.
        checks: one :class:`Check` per id in :data:`CHECKS`, in that order.
        undertrained: candidates, most under-trained first: token, id, score, z, category, kind.
        policy: the thresholds used.
        method: how under-trained tokens were scored.
        seconds: how long the audit took.
        family: the kind of model ("static", "encoder", "decoder", "unknown"), which decides where each
            check's premise holds (:data:`PREMISES`); family_source: what said so.
    """

    source: str
    shape: tuple[int, int]
    checks: tuple[Check, ...]
    undertrained: pd.DataFrame = field(compare=False, repr=False)
    policy: Policy = field(default_factory=Policy)
    method: str = ""
    seconds: float = 0.0
    family: str = "unknown"
    family_source: str = ""

    def check(self, check_id: str) -> Check:
        """The result of one check.

        Raises:
            ParameterError: an unknown id.
        """
        for c in self.checks:
            if c.id == check_id:
                return c
        raise ParameterError(f"check={check_id!r}: must be one of {', '.join(CHECKS)}")

    @property
    def statuses(self) -> dict[str, str]:
        return {c.id: c.status for c in self.checks}

    def summary(self) -> dict[str, int]:
        """How many checks passed, warned, failed, or did not apply."""
        counts = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            counts[c.status] += 1
        return counts

    @property
    def worst(self) -> str:
        """The most severe status ("pass" when nothing warned or failed)."""
        worst = "pass"
        for c in self.checks:
            if _SEVERITY[c.status] > _SEVERITY[worst]:
                worst = c.status
        return worst

    def reaches(self, level: str) -> bool:
        """Whether any check is at ``level`` ("fail" or "warn") or worse.

        Raises:
            ParameterError: ``level`` is not "fail" or "warn".
        """
        if level not in ("fail", "warn"):
            raise ParameterError(f"fail_on={level!r}: must be 'fail' or 'warn'")
        return _SEVERITY[self.worst] >= _SEVERITY[level]

    def to_json(self, max_tokens: int = 200) -> dict[str, Any]:
        """The ``embedscope audit --json`` object (the keys are a public contract)."""
        cands = self.undertrained
        return {
            "source": self.source,
            "checks": [c.to_json(max_tokens) for c in self.checks],
            "undertrained": [{"token": str(t), "id": int(i), "score": _finite(float(s)), "category": str(cat)}
                             for t, i, s, cat in zip(cands["token"], cands["id"], cands["score"],
                                                     cands["category"], strict=True)],
            "summary": self.summary(),
            "shape": list(self.shape),
            "method": self.method,
            "policy": self.policy.source,
            "seconds": round(self.seconds, 3),
            "family": self.family,
            "family_source": self.family_source,
        }


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# -- progress in stages ---------------------------------------------------------------------------------
class _Stage:
    """Maps a stage's own 0..1 onto its slice of the whole audit."""

    def __init__(self, rep: Reporter, lo: float, hi: float, label: str) -> None:
        self.rep, self.lo, self.hi, self.label = rep, lo, hi, label

    def __call__(self, fraction: float) -> None:
        self.rep(self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0), self.label)


_CHUNK_VALUES = 1 << 22


def _row_chunks(n: int, d: int, values: int = _CHUNK_VALUES) -> Iterator[tuple[int, int]]:
    step = max(1, values // max(1, d))
    for s in range(0, n, step):
        yield s, min(n, s + step)


# -- pass 1: one scan of every row ----------------------------------------------------------------------
@dataclass
class _Scan:
    norms: np.ndarray        # float64; NaN for rows holding NaN/Inf
    nan_rows: np.ndarray     # bool
    inf_rows: np.ndarray     # bool (Inf and no NaN)
    zero_rows: np.ndarray    # bool
    good: np.ndarray         # bool: finite and not zero
    unit_sum: np.ndarray     # (d,) sum of the good rows divided by their norms
    unit_sq: np.ndarray      # (d,) sum of squares of the same
    raw_sum: np.ndarray      # (d,) sum of the good rows
    hashes: np.ndarray       # uint64 content hash of every row
    dropped: tuple[int, ...] = ()  # dimensions left out of ``norms`` (rogue dimensions that failed)


def _without_dims(m: EmbeddingMatrix, scan: _Scan, dims: Sequence[int]) -> _Scan:
    """The scan with ``dims`` left out of the row norms.

    A dimension that swamps every cosine swamps every norm too, hiding the under-trained rows and the
    norm tail; the rogue-dimension check reports it, and the norm checks look past it.
    """
    cols = np.asarray(sorted(dims), dtype=np.int64)
    part = np.zeros(len(m))
    for s, e in _row_chunks(len(m), m.dim):
        c = np.asarray(m.vectors[s:e], dtype=np.float64)[:, cols]
        part[s:e] = np.einsum("ij,ij->i", c, c)
    with np.errstate(invalid="ignore"):
        norms = np.sqrt(np.maximum(scan.norms ** 2 - part, 0.0))
    norms[~np.isfinite(scan.norms)] = np.nan
    good = np.isfinite(norms) & (norms > 0) & scan.good
    return replace(scan, norms=norms, good=good, dropped=tuple(int(c) for c in cols))


def _dropped_note(scan: _Scan) -> str:
    if not scan.dropped:
        return ""
    return (f" (norms leave out rogue dimension{'s' if len(scan.dropped) > 1 else ''} "
            f"{', '.join(map(str, scan.dropped))}, which swamp{'' if len(scan.dropped) > 1 else 's'} them)")


def _scan(m: EmbeddingMatrix, stage: _Stage) -> _Scan:
    n, d = m.shape
    norms = np.empty(n)
    nan_rows = np.zeros(n, dtype=bool)
    inf_rows = np.zeros(n, dtype=bool)
    hashes = np.zeros(n, dtype=np.uint64)
    unit_sum, unit_sq, raw_sum = np.zeros(d), np.zeros(d), np.zeros(d)
    coef = np.random.default_rng(0x5EED).integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)
    for s, e in _row_chunks(n, d):
        stage(s / n)
        c = np.asarray(m.vectors[s:e], dtype=np.float32)
        sq = np.einsum("ij,ij->i", c, c, dtype=np.float64)
        finite = np.isfinite(sq)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            has_nan = np.isnan(c[bad]).any(axis=1)
            nan_rows[s + bad[has_nan]] = True
            inf_rows[s + bad[~has_nan]] = True
            sq[bad] = np.nan
        norm = np.sqrt(sq)
        norms[s:e] = norm
        ok = finite & (sq > 0)
        g = c if ok.all() else c[ok]
        u = g / norm[ok, None].astype(np.float32)
        unit_sum += u.sum(axis=0, dtype=np.float64)
        unit_sq += np.einsum("ij,ij->j", u, u, dtype=np.float64)
        raw_sum += g.sum(axis=0, dtype=np.float64)
        # Content hash for exact duplicates: +0.0 folds -0.0 into 0.0; uint64 sums wrap, which is fine.
        bits = (c + np.float32(0.0)).view(np.uint32).astype(np.uint64)
        bits *= coef
        hashes[s:e] = bits.sum(axis=1)
    zero_rows = np.isfinite(norms) & (norms == 0)
    good = np.isfinite(norms) & (norms > 0)
    stage(1.0)
    return _Scan(norms, nan_rows, inf_rows, zero_rows, good, unit_sum, unit_sq, raw_sum, hashes)


def _unit_rows(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray) -> np.ndarray:
    x = np.asarray(m.vectors[rows], dtype=np.float32)
    return x / norms[rows, None].astype(np.float32)


def _one_thread() -> contextlib.AbstractContextManager[object]:
    """BLAS on one thread: small factorisations are slower threaded, badly so on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _top_directions(y: np.ndarray, k: int, rng: np.random.Generator, iters: int = 6) -> np.ndarray:
    """Top-``k`` right singular vectors of ``y`` (k × d, orthonormal rows) by subspace iteration."""
    d = y.shape[1]
    k = min(k, d, y.shape[0])
    q = rng.standard_normal((d, min(d, k + 8))).astype(y.dtype)
    for _ in range(iters):
        q = y.T @ (y @ q)
        with _one_thread():
            q, _ = np.linalg.qr(q)
    b = y @ q
    with _one_thread():
        _, _, vt = np.linalg.svd(b, full_matrices=False)
    out = (vt[:k] @ q.T).astype(np.float32)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out)


# -- helpers for statuses -------------------------------------------------------------------------------
def _status_above(value: float, warn: float, fail: float) -> str:
    return "fail" if value > fail else "warn" if value > warn else "pass"


def _na(check: str, policy: Policy, reason: str, **data: Any) -> Check:
    return Check(check, "n/a", None, policy.section(check), reason, data=dict(data))


def _robust_z(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    if mad <= 0:
        return np.zeros_like(x), med, 0.0
    return (x - med) / mad, med, mad


def _histogram(values: np.ndarray, bins: int = 60, lo: float | None = None,
               hi: float | None = None) -> pd.DataFrame:
    v = values[np.isfinite(values)]
    if not v.size:
        return pd.DataFrame({"start": [], "end": [], "rows": []})
    rng = (lo if lo is not None else float(v.min()), hi if hi is not None else float(v.max()))
    if rng[1] <= rng[0]:
        rng = (rng[0] - 0.5, rng[0] + 0.5)
    counts, edges = np.histogram(v, bins=bins, range=rng)
    return pd.DataFrame({"start": edges[:-1], "end": edges[1:], "rows": counts.astype(int)})


def _tokens(m: EmbeddingMatrix, ids: Sequence[int] | np.ndarray) -> tuple[str, ...]:
    keys = m.index_to_key
    return tuple(keys[int(i)] for i in ids)


# -- 1. numerical damage --------------------------------------------------------------------------------
def _check_numerical(m: EmbeddingMatrix, scan: _Scan, policy: Policy) -> Check:
    pol = policy.section("numerical")
    zero = scan.zero_rows.copy()
    padding_zero = np.zeros_like(zero)
    if m.unassigned_from is not None:
        # Zero rows past the tokenizer's vocabulary are padding no token can reach: noted, not damage.
        padding_zero[m.unassigned_from:] = zero[m.unassigned_from:]
        zero[m.unassigned_from:] = False
    bad = np.flatnonzero(scan.nan_rows | scan.inf_rows | zero)
    problem = np.where(scan.nan_rows[bad], "NaN", np.where(scan.inf_rows[bad], "Inf", "all zeros"))
    table = pd.DataFrame({"token": _tokens(m, bad), "id": bad, "problem": problem})
    value = len(bad)
    status = _status_above(value, policy.num("numerical", "warn_above"), policy.num("numerical", "fail_above"))
    parts = [f"{int(scan.nan_rows.sum())} rows with NaN", f"{int(scan.inf_rows.sum())} with Inf",
             f"{int(zero.sum())} all-zero"]
    reason = ("no NaN, Inf or all-zero rows" if not value else ", ".join(parts) +
              " (these rows break every similarity they enter)")
    if padding_zero.any():
        reason += f"; {int(padding_zero.sum())} zero padding rows past the tokenizer are not counted"
    return Check("numerical", status, float(value), pol, reason, _tokens(m, bad), tuple(int(i) for i in bad),
                 data={"rows": table})


# -- 2. duplicates --------------------------------------------------------------------------------------
class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = int(p[root])
        while p[a] != root:
            p[a], a = root, int(p[a])
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _exact_groups(m: EmbeddingMatrix, scan: _Scan) -> list[list[int]]:
    idx = np.flatnonzero(scan.good)
    if idx.size < 2:
        return []
    h = scan.hashes[idx]
    order = np.argsort(h, kind="stable")
    hs = h[order]
    starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
    sizes = np.diff(np.r_[starts, hs.size])
    groups: list[list[int]] = []
    for st, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        rows = np.sort(idx[order[st:st + size]])
        vecs = np.asarray(m.vectors[rows]) + 0  # +0 folds -0.0 into 0.0 before comparing bytes
        by_content: dict[bytes, list[int]] = {}
        for r, v in zip(rows, vecs, strict=True):
            by_content.setdefault(v.tobytes(), []).append(int(r))
        groups.extend(g for g in by_content.values() if len(g) > 1)
    return sorted(groups)


_BOUND_DIMS = 64      # projection dimensions of the near-duplicate bound
_BLOCK_ROWS = 4096    # rows per block of the pairwise pass (a 4096² float32 block is 64 MiB)


def _near_pairs(m: EmbeddingMatrix, rows: np.ndarray, norms: np.ndarray, threshold: float,
                directions: np.ndarray | None, stage: _Stage) -> Iterator[tuple[int, int, float]]:
    """Pairs of ``rows`` (indices into the matrix) whose cosine is above ``threshold``, exactly.

    For unit rows u, v and an orthonormal projection P with residual norms r: cos(u, v) = Pu·Pv + (rest)
    ≤ Pu·Pv + r_u r_v. One small matrix product per block bounds every pair; only pairs whose bound
    reaches the threshold are computed in full. Memory stays at one block.
    """
    n = rows.size
    d = m.dim
    exact = directions is None
    width = d if exact else directions.shape[0] + 1  # type: ignore[union-attr]
    z = np.empty((n, width), dtype=np.float32)
    for s, e in _row_chunks(n, d):
        u = _unit_rows(m, rows[s:e], norms)
        if exact:
            z[s:e] = u
        else:
            p = u @ directions.T  # type: ignore[union-attr]
            z[s:e, :-1] = p
            z[s:e, -1] = np.sqrt(np.maximum(0.0, 1.0 - np.einsum("ij,ij->i", p, p)))
    slack = 1e-4 if not exact else 1e-5  # float32 rounding of the bound; every survivor is re-checked exactly
    cut = np.float32(threshold - slack)
    # Sorted by the first coordinate, a block pair whose ranges are farther apart than the largest distance
    # between two unit rows above the threshold holds no pair: |u_0 - v_0| <= |u - v| = sqrt(2 - 2 cos).
    order = np.argsort(z[:, 0], kind="stable")
    z, rows = z[order], rows[order]
    reach = math.sqrt(2.0 * max(0.0, 1.0 - threshold)) + 1e-4
    blocks = list(range(0, n, _BLOCK_ROWS))
    total = len(blocks) * (len(blocks) + 1) // 2
    done = 0
    buf = np.empty((_BLOCK_ROWS, _BLOCK_ROWS), dtype=np.float32)
    for bi in blocks:
        zi = z[bi:bi + _BLOCK_ROWS]
        for bj in blocks:
            if bj < bi:
                continue
            done += 1
            stage(done / total)
            if z[bj, 0] - z[min(bi + _BLOCK_ROWS, n) - 1, 0] > reach:
                break
            zj = z[bj:bj + _BLOCK_ROWS]
            out = buf[:zi.shape[0], :zj.shape[0]]
            np.matmul(zi, zj.T, out=out)
            if not (out.max() >= cut):
                continue
            a, b = np.nonzero(out >= cut)
            if bi == bj:
                keep = b > a
                a, b = a[keep], b[keep]
            if not a.size:
                continue
            ra, rb = rows[bi + a], rows[bj + b]
            yield from _verify(m, ra, rb, norms, threshold)


def _verify(m: EmbeddingMatrix, ra: np.ndarray, rb: np.ndarray, norms: np.ndarray,
            threshold: float) -> Iterator[tuple[int, int, float]]:
    """The exact cosine (float64) of each candidate pair; yields those above ``threshold``."""
    step = max(1, (1 << 20) // max(1, m.dim))
    for s in range(0, ra.size, step):
        a, b = ra[s:s + step], rb[s:s + step]
        # Gather each distinct row once: candidates in a cluster share rows.
        uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        vec = np.asarray(m.vectors[uniq], dtype=np.float64)
        va, vb = vec[inv[:a.size]], vec[inv[a.size:]]
        cos = np.einsum("ij,ij->i", va, vb) / (norms[a] * norms[b])
        for i in np.flatnonzero(cos > threshold):
            yield int(a[i]), int(b[i]), float(cos[i])


def _check_duplicates(m: EmbeddingMatrix, scan: _Scan, directions: np.ndarray | None, policy: Policy,
                      stage: _Stage) -> Check:
    pol = policy.section("duplicates")
    threshold = policy.num("duplicates", "cosine")
    if int(scan.good.sum()) < 2:
        return _na("duplicates", policy, "fewer than two finite, non-zero rows to compare")
    exact = _exact_groups(m, scan)
    extra = {r for g in exact for r in g[1:]}
    reps = np.array([i for i in np.flatnonzero(scan.good) if int(i) not in extra], dtype=np.int64)
    uf = _UnionFind(len(m))
    touched = np.zeros(len(m), dtype=bool)
    low: dict[int, float] = {}
    if reps.size >= 2:
        for a, b, cos in _near_pairs(m, reps, scan.norms, threshold, directions, stage):
            uf.union(a, b)
            touched[a] = touched[b] = True
            low[a] = min(low.get(a, 1.0), cos)
            low[b] = min(low.get(b, 1.0), cos)
    comps: dict[int, list[int]] = {}
    for r in np.flatnonzero(touched):
        comps.setdefault(uf.find(int(r)), []).append(int(r))
    near = sorted(sorted(g) for g in comps.values() if len(g) > 1)
    rows = [{"group": i + 1, "kind": "exact", "size": len(g), "tokens": ", ".join(_tokens(m, g)),
             "ids": ", ".join(map(str, g)), "min cosine": 1.0} for i, g in enumerate(exact)]
    rows += [{"group": len(exact) + i + 1, "kind": "near", "size": len(g), "tokens": ", ".join(_tokens(m, g)),
              "ids": ", ".join(map(str, g)), "min cosine": min(low[r] for r in g)}
             for i, g in enumerate(near)]
    table = pd.DataFrame(rows, columns=["group", "kind", "size", "tokens", "ids", "min cosine"])
    max_exact = policy.num("duplicates", "max_exact_groups")
    max_near = policy.num("duplicates", "max_near_groups")
    # Equal padding rows past the tokenizer are never looked up: worth a look, not damage.
    padding = [g for g in exact if m.unassigned_from is not None and min(g) >= m.unassigned_from]
    damage = len(exact) - len(padding)
    status = "fail" if damage > max_exact else "warn" if (len(near) > max_near or padding) else "pass"
    evidence = [r for g in exact + near for r in g]
    if not exact and not near:
        reason = f"no two rows are equal or closer than cosine {threshold:g}"
    else:
        reason = (f"{len(exact)} groups of exactly equal rows ({sum(len(g) for g in exact)} rows) and "
                  f"{len(near)} groups of near-duplicates (cosine > {threshold:g})")
        if padding:
            reason += f"; {len(padding)} of the equal groups are padding rows no token reaches"
    return Check("duplicates", status, float(len(exact) + len(near)), pol, reason, _tokens(m, evidence),
                 tuple(evidence), data={"groups": table, "exact": exact, "near": near})


# -- 3. norm outliers -----------------------------------------------------------------------------------
def _check_norm_outliers(m: EmbeddingMatrix, scan: _Scan, policy: Policy) -> Check:
    pol = policy.section("norm_outliers")
    idx = np.flatnonzero(scan.good)
    if idx.size < policy.num("norm_outliers", "min_rows"):
        return _na("norm_outliers", policy, f"{idx.size} finite non-zero rows; the robust z-score needs at least "
                                            f"{int(policy.num('norm_outliers', 'min_rows'))}")
    logn = np.log(scan.norms[idx])
    z, med, mad = _robust_z(logn)
    if mad < 1e-6:
        return _na("norm_outliers", policy, "every row has the same norm (an L2-normalised matrix); there is no "
                                            "norm distribution to find outliers in")
    zt = policy.num("norm_outliers", "z")
    out = np.flatnonzero(np.abs(z) > zt)
    order = out[np.argsort(-np.abs(z[out]), kind="stable")]
    ids = idx[order]
    lo, hi = math.exp(med - zt * mad), math.exp(med + zt * mad)
    hist = _histogram(scan.norms[idx])
    hist["outlier"] = (hist["end"] <= lo) | (hist["start"] >= hi)
    table = pd.DataFrame({"token": _tokens(m, ids[:5000]), "id": ids[:5000], "norm": scan.norms[ids[:5000]],
                          "z": z[order[:5000]]})
    value = out.size / idx.size
    status = _status_above(value, policy.num("norm_outliers", "warn_above"), policy.num("norm_outliers", "fail_above"))
    low, high = int((z[out] < 0).sum()), int((z[out] > 0).sum())
    # A narrow norm distribution puts both cut-offs near the median: digits enough to tell the three apart.
    lo_s, med_s, hi_s = distinct([lo, math.exp(med), hi])
    reason = (f"no row norm is beyond {zt:g} robust standard deviations (log scale) from the median "
              f"{med_s}" if not out.size else
              f"{low} rows below {lo_s} and {high} above {hi_s} (robust |z| > {zt:g} on log norm, median "
              f"{med_s}); a tail of small norms is common in trained models")
    reason += _dropped_note(scan)
    return Check("norm_outliers", status, value, pol, reason, _tokens(m, ids), tuple(int(i) for i in ids),
                 data={"histogram": hist, "cutoffs": (lo, hi), "outliers": table, "median": math.exp(med)})


# -- 4. under-trained tokens ----------------------------------------------------------------------------
def _tokenizer_folder(m: EmbeddingMatrix) -> Path | None:
    if not m.provenance.path:
        return None
    p = Path(m.provenance.path)
    folder = p if p.is_dir() else p.parent
    return folder if folder.is_dir() else None


def _read_json(path: Path) -> Any:
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
    folder = _tokenizer_folder(m)
    if folder is None:
        return roles, templates
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        cfg = _read_json(folder / name)
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
    tj = _read_json(folder / "tokenizer.json")
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
    cats = np.full(n, "ok", dtype=object)
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
        with _one_thread():
            _, vecs = np.linalg.eigh(cov)
        pc = vecs[:, -1]
    else:
        pc = _top_directions(x.astype(np.float32), 1, rng, iters=10)[0].astype(np.float64)
    return np.asarray(pc / np.linalg.norm(pc))


def _tied_scores(m: EmbeddingMatrix, scan: _Scan, refs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cosine distance of every good row to the mean reference row, first principal component removed."""
    good = np.flatnonzero(scan.good)
    pc = _first_pc(m, good, rng, scan.dropped)
    ref = _rows64(m, refs, scan.dropped)
    ref -= np.outer(ref @ pc, pc)
    mu = ref.mean(axis=0)
    mu_norm = float(np.linalg.norm(mu))
    scores = np.full(len(m), np.nan)
    w = np.stack([pc, mu], axis=1)
    for s, e in _row_chunks(len(m), m.dim):
        proj = _rows64(m, slice(s, e), scan.dropped) @ w
        # mu is orthogonal to pc, so (x - (x.pc) pc).mu = x.mu
        resid = np.sqrt(np.maximum(scan.norms[s:e] ** 2 - proj[:, 0] ** 2, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = proj[:, 1] / np.maximum(resid * mu_norm, 1e-12)
        scores[s:e] = 1.0 - cos
    scores[~scan.good] = np.nan
    return scores


def _check_undertrained(m: EmbeddingMatrix, scan: _Scan, cats: np.ndarray, policy: Policy,
                        rng: np.random.Generator) -> tuple[Check, pd.DataFrame, str]:
    pol = policy.section("undertrained")
    empty = pd.DataFrame({"token": [], "id": [], "score": [], "z": [], "category": [], "kind": []})
    idx = np.flatnonzero(scan.good)
    min_rows = int(policy.num("undertrained", "min_rows"))
    if idx.size < min_rows:
        return _na("undertrained", policy, f"{idx.size} finite non-zero rows; scoring needs at least {min_rows}"), \
            empty, ""
    refs = np.flatnonzero(((cats == "unreachable") | (cats == "declared-unused")) & scan.good)
    tied = m.provenance.tied
    if tied and refs.size:
        method = (f"tied embeddings: cosine distance to the mean of {refs.size} reference tokens with the first "
                  "principal component removed (lowest first)")
        scores = _tied_scores(m, scan, refs, rng)
        s = scores[idx]
    else:
        method = "input-embedding L2 norm (lowest first)"
        if tied:
            method += "; the matrix is tied but the tokenizer gives no reference tokens, so the norm is used"
        scores = scan.norms.copy()
        s = np.log(scores[idx])
    z, _med, mad = _robust_z(s)
    if mad < 1e-6:
        return _na("undertrained", policy, "every row scores the same (e.g. an L2-normalised matrix); the "
                                           f"indicator ({method}) cannot separate under-trained rows"), empty, method
    frac = policy.num("undertrained", "fraction")
    k = max(1, math.ceil(frac * idx.size))
    order = np.argsort(scores[idx], kind="stable")[:k]
    cand = idx[order]
    cz = z[order]
    kinds = m.kinds
    table = pd.DataFrame({"token": _tokens(m, cand), "id": cand, "score": scores[cand], "z": cz,
                          "category": cats[cand].astype(str), "kind": [kinds[i] for i in cand]})
    zt = policy.num("undertrained", "z")
    flagged = cand[cz < -zt]
    value = flagged.size / idx.size
    status = _status_above(value, policy.num("undertrained", "warn_above"), policy.num("undertrained", "fail_above"))
    n_ref_cand = int(np.isin(cand, refs).sum())
    reason = (f"{flagged.size} of the {k} lowest-scoring tokens ({frac:.0%}) stand apart from the rest "
              f"(robust z < -{zt:g}) on the {method.split(' (')[0]}; {refs.size} reference tokens found from the "
              f"tokenizer, {n_ref_cand} of them among the candidates")
    if not flagged.size:
        reason = (f"no token stands apart (robust z < -{zt:g}) on the {method.split(' (')[0]}; "
                  f"the {k} lowest are listed as candidates")
    reason += _dropped_note(scan)
    cutoff = float(scores[cand[-1]])
    hist = _histogram(scores[idx])
    hist["candidate"] = hist["start"] <= cutoff
    check = Check("undertrained", status, value, pol, reason, _tokens(m, flagged), tuple(int(i) for i in flagged),
                  data={"histogram": hist, "cutoff": cutoff, "candidates": table, "method": method,
                        "references": int(refs.size),
                        "xlabel": "cosine distance to unused mean" if (tied and refs.size) else "L2 norm"})
    return check, table, method


# -- 5. anisotropy and 6. rogue dimensions --------------------------------------------------------------
@dataclass
class _Sample:
    rows: np.ndarray
    cos_mean: float
    cos_hist: pd.DataFrame
    cos_quantiles: tuple[float, float, float]
    cos2_contrib: np.ndarray   # (d,) per-dimension contribution to E[cos^2] over distinct sample pairs
    directions: np.ndarray | None


def _sample(m: EmbeddingMatrix, scan: _Scan, policy: Policy, rng: np.random.Generator, stage: _Stage) -> _Sample:
    good = np.flatnonzero(scan.good)
    size = min(good.size, int(policy.num("anisotropy", "sample")))
    rows = good if good.size <= size else np.sort(rng.choice(good, size, replace=False))
    y = _unit_rows(m, rows, scan.norms) if rows.size else np.zeros((0, m.dim), np.float32)
    stage(0.2)
    s = rows.size
    if s >= 2:
        k = y @ y.T
        off = k.sum(dtype=np.float64) - float(np.trace(k, dtype=np.float64))
        cos_mean = off / (s * (s - 1))
        counts, edges = np.histogram(k, bins=80, range=(-1.0, 1.0))
        diag, _ = np.histogram(np.diag(k), bins=80, range=(-1.0, 1.0))
        hist = pd.DataFrame({"start": edges[:-1], "end": edges[1:], "pairs": ((counts - diag) // 2).astype(int)})
        a = rng.integers(0, s, 200_000)
        b = rng.integers(0, s, 200_000)
        vals = k[a[a != b], b[a != b]]
        qs = np.quantile(vals, [0.05, 0.5, 0.95]) if vals.size else np.zeros(3)
        q = (float(qs[0]), float(qs[1]), float(qs[2]))
        ky = k @ y
        contrib = (np.einsum("ij,ij->j", ky, y, dtype=np.float64) - np.einsum("ij,ij->j", y, y, dtype=np.float64))
        contrib /= s * (s - 1)
        del k, ky
    else:
        cos_mean, hist, q = float("nan"), pd.DataFrame({"start": [], "end": [], "pairs": []}), (0.0, 0.0, 0.0)
        contrib = np.zeros(m.dim)
    stage(0.7)
    directions = None
    if m.dim > 2 * _BOUND_DIMS and s >= _BOUND_DIMS:
        directions = _top_directions(y, _BOUND_DIMS, rng)
    stage(1.0)
    return _Sample(rows, float(cos_mean), hist, q, contrib, directions)


def _check_anisotropy(m: EmbeddingMatrix, scan: _Scan, sample: _Sample, policy: Policy) -> Check:
    pol = policy.section("anisotropy")
    n = int(scan.good.sum())
    min_rows = int(policy.num("anisotropy", "min_rows"))
    if n < min_rows:
        return _na("anisotropy", policy,
                   f"{n} finite non-zero rows; the mean pairwise cosine needs at least {min_rows}")
    mean_cos = (float(scan.unit_sum @ scan.unit_sum) - n) / (n * (n - 1))
    ratio = float(np.linalg.norm(scan.raw_sum / n) / np.mean(scan.norms[scan.good]))
    status = _status_above(mean_cos, policy.num("anisotropy", "warn_above"), policy.num("anisotropy", "fail_above"))
    q05, _q50, q95 = sample.cos_quantiles
    reason = (f"mean cosine between rows {mean_cos:.3f} (all pairs); the mean vector is {ratio:.2f} of the mean "
              f"norm; on a seeded sample of {sample.rows.size} rows cosines run {q05:.2f} … {q95:.2f} (5–95%)")
    if status != "pass":
        reason += "; rows share a common direction that inflates every cosine"
    return Check("anisotropy", status, mean_cos, pol, reason,
                 data={"histogram": sample.cos_hist, "mean": mean_cos, "sample_mean": sample.cos_mean,
                       "mean_vector_ratio": ratio, "quantiles": sample.cos_quantiles, "sample": int(sample.rows.size)})


def _check_rogue(m: EmbeddingMatrix, scan: _Scan, sample: _Sample, policy: Policy) -> Check:
    pol = policy.section("rogue_dimensions")
    n, d = int(scan.good.sum()), m.dim
    if d < policy.num("rogue_dimensions", "min_dims"):
        return _na("rogue_dimensions", policy, f"{d} dimensions; with so few, every dimension carries a large share "
                                               f"(needs at least {int(policy.num('rogue_dimensions', 'min_dims'))})")
    if n < policy.num("rogue_dimensions", "min_rows") or sample.rows.size < 2:
        return _na("rogue_dimensions", policy, f"{n} finite non-zero rows; too few pairs to share out the cosine")
    # Timkey & van Schijndel: CC_i = E[u_i v_i] over pairs of distinct unit rows, exact from sums.
    cc = (scan.unit_sum ** 2 - scan.unit_sq) / (n * (n - 1))
    mean_cos = float(cc.sum())
    use_cc = mean_cos >= policy.num("rogue_dimensions", "min_mean_cosine")
    cc_share = cc / mean_cos if use_cc else np.full(d, np.nan)
    e2 = float(sample.cos2_contrib.sum())
    cos2_share = sample.cos2_contrib / e2 if e2 > 0 else np.zeros(d)
    share = np.fmax(np.nan_to_num(cc_share, nan=-np.inf), cos2_share)
    warn, fail = policy.num("rogue_dimensions", "warn_above"), policy.num("rogue_dimensions", "fail_above")
    order = np.argsort(-share, kind="stable")
    value = float(share[order[0]])
    flagged = [int(i) for i in order if share[i] > warn]
    handful = int(policy.num("rogue_dimensions", "handful"))
    top_sum = float(share[order[:handful]].sum())
    status = _status_above(value, warn, fail)
    if status == "pass" and top_sum > fail:
        status, flagged = "warn", [int(i) for i in order[:handful]]
    evidence: list[int] = []
    if flagged:
        # The rows that lean hardest on the flagged dimensions show what they do to cosines.
        u = _unit_rows(m, sample.rows, scan.norms)[:, flagged]
        strength = np.abs(u).max(axis=1)
        evidence = [int(sample.rows[i]) for i in np.argsort(-strength, kind="stable")[:10]]
    table = pd.DataFrame({"dim": np.arange(d), "share": share, "cos_share": cc_share, "cos2_share": cos2_share,
                          "contribution": cc, "flagged": np.isin(np.arange(d), flagged)})
    if d > 4096:
        table = table.iloc[np.sort(order[:4096])].reset_index(drop=True)
    top = ", ".join(f"{i} ({share[i]:.0%})" for i in order[:3])
    if status == "pass":
        reason = (f"no dimension dominates: the largest shares are {top} (a uniform share is {1 / d:.2%}); "
                  f"mean cosine {mean_cos:.3f}")
    else:
        reason = (f"dimension(s) {', '.join(map(str, flagged))} carry {top_sum if len(flagged) > 1 else value:.0%} of "
                  f"the cosine between random rows (threshold {warn:g} warn, {fail:g} fail); "
                  "these dimensions swamp every similarity")
    return Check("rogue_dimensions", status, value, pol, reason, _tokens(m, evidence), tuple(evidence),
                 tuple(flagged), data={"dims": table, "mean_cosine": mean_cos, "warn": warn, "fail": fail})


# -- 7. norm vs frequency -------------------------------------------------------------------------------
_ORDERED_FORMATS = ("word2vec-text", "word2vec-binary", "glove")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = pd.Series(a).rank().to_numpy(dtype=np.float64, copy=True)
    rb = pd.Series(b).rank().to_numpy(dtype=np.float64, copy=True)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra @ ra) * (rb @ rb)))
    return float(ra @ rb) / den if den > 0 else 0.0


def _check_norm_frequency(m: EmbeddingMatrix, scan: _Scan, policy: Policy, rng: np.random.Generator) -> Check:
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
        from wordfreq import get_frequency_dict

        table = get_frequency_dict(lang)
        keys = m.index_to_key
        f = np.array([table.get(strip_marker(keys[i], scheme)[0].casefold(), 0.0) for i in words])
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
        return _na("norm_frequency", policy, f"{why}, and the file order is not a frequency order; set "
                                             "norm_frequency.language or source = 'order' in a policy")
    if ids.size < min_words:
        return _na("norm_frequency", policy, f"{ids.size} words with a frequency; needs at least {min_words}")
    norms = scan.norms[ids]
    rho = _spearman(norms, freq)
    warn_below = policy.num("norm_frequency", "warn_below")
    status = "warn" if rho < warn_below else "pass"
    pick = np.arange(ids.size) if ids.size <= 4000 else np.sort(rng.choice(ids.size, 4000, replace=False))
    points = pd.DataFrame({"token": _tokens(m, ids[pick]), "frequency": freq[pick], "norm": norms[pick]})
    evidence: list[int] = []
    if status == "warn":
        # The most frequent words with the smallest norms show the reversal.
        top = np.argsort(-freq, kind="stable")[: max(10, ids.size // 10)]
        evidence = [int(ids[i]) for i in top[np.argsort(norms[top], kind="stable")[:10]]]
    reason = (f"Spearman rho {rho:+.2f} between row norm and frequency from {how}; "
              + ("trained embeddings give frequent words larger norms, so a reversal suggests rows and vocabulary "
                 "are out of step" if status == "warn" else
                 "frequent words have larger norms, as training leaves them" if rho > 0.2 else
                 "norms do not follow frequency")) + _dropped_note(scan)
    return Check("norm_frequency", status, rho, pol, reason, _tokens(m, evidence), tuple(evidence),
                 data={"points": points, "source": how,
                       "xlabel": "Zipf frequency" if how.startswith("wordfreq") else "-(row in file)"})


# -- 8. tokenizer consistency ---------------------------------------------------------------------------
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


def _check_tokenizer(m: EmbeddingMatrix, policy: Policy) -> Check:
    pol = policy.section("tokenizer")
    if not m.has_tokenizer:
        return _na("tokenizer", policy, f"no model tokenizer ({m.tokenizer.scheme} vocabulary from "
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
    folder = _tokenizer_folder(m)
    if folder is not None:
        cfg = _read_json(folder / "config.json")
        for c in (cfg, cfg.get("text_config") if isinstance(cfg, Mapping) else None):
            if isinstance(c, Mapping) and isinstance(c.get("vocab_size"), int):
                config_size = int(c["vocab_size"])
                break
    problems: list[str] = []
    status = "pass"
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


# -- the audit ------------------------------------------------------------------------------------------
def audit(
    m: EmbeddingMatrix,
    policy: Policy | None = None,
    *,
    source: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> AuditReport:
    """Run every check on ``m``.

    Memory stays at a few blocks besides the matrix: rows are read in chunks, the near-duplicate search
    works block by block, and anisotropy's distribution and the squared-cosine shares use a seeded sample.

    Args:
        m: the matrix.
        policy: thresholds (default: :data:`DEFAULTS`).
        source: what to call the matrix in the report (default: its path).
        progress: called with the fraction done and a message.
        cancel: returns True to stop.

    Raises:
        Cancelled: ``cancel`` said stop.
    """
    policy = policy or Policy()
    family, family_source = _family(m, policy)
    rep = Reporter(progress, cancel)
    t0 = time.perf_counter()
    seed = int(policy.num("anisotropy", "seed"))
    rng = np.random.default_rng(seed)
    enabled = {c: bool(policy.get(c, "enabled")) for c in CHECKS}
    rep(0.0, "reading rows")
    scan = _scan(m, _Stage(rep, 0.0, 0.2, "reading rows"))
    sample = _sample(m, scan, policy, rng, _Stage(rep, 0.2, 0.3, "sampling pairs"))
    results: dict[str, Check] = {}
    results["numerical"] = _check_numerical(m, scan, policy)
    if enabled["duplicates"]:
        results["duplicates"] = _check_duplicates(m, scan, sample.directions, policy,
                                                  _Stage(rep, 0.3, 0.75, "searching near-duplicates"))
    static_why = (f"static word vectors ({family_source}) lie in a narrow cone by construction (Mimno & Thompson "
                  "2017), so a common direction is no defect")
    results["anisotropy"] = _applies(_check_anisotropy(m, scan, sample, policy), family != "static", static_why)
    rogue = results["rogue_dimensions"] = _applies(_check_rogue(m, scan, sample, policy), family != "static",
                                                   static_why)
    norm_scan = scan
    if enabled["rogue_dimensions"] and rogue.status == "fail" and rogue.dims:
        norm_scan = _without_dims(m, scan, rogue.dims)
    rep(0.75, "norm outliers")
    results["norm_outliers"] = _check_norm_outliers(m, norm_scan, policy)
    cats = np.full(len(m), "ok", dtype=object)
    if enabled["undertrained"]:
        cats = token_categories(m, _Stage(rep, 0.75, 0.88, "finding unreachable tokens"))
    rep(0.88, "scoring under-trained tokens")
    under, table, method = _check_undertrained(m, norm_scan, cats, policy, rng)
    results["undertrained"] = under
    if "duplicates" in results and enabled["undertrained"]:
        results["duplicates"] = _undertrained_groups(m, results["duplicates"], under, policy)
    rep(0.92, "norm vs frequency")
    if enabled["norm_frequency"]:
        results["norm_frequency"] = _applies(
            _check_norm_frequency(m, norm_scan, policy, rng), family in ("static", "encoder"),
            f"the model is {'a ' + family if family != 'unknown' else 'of unknown family'} ({family_source}); "
            "frequent words get larger norms in word2vec-style vectors and encoder input embeddings, not in "
            "decoder language models (set [model] family in a policy if the family is wrong)")
    rep(0.97, "tokenizer")
    results["tokenizer"] = _check_tokenizer(m, policy)
    checks = tuple(results[c] if enabled[c] and c in results else _na(c, policy, "turned off by the policy")
                   for c in CHECKS)
    if not enabled["undertrained"]:
        table = table.iloc[0:0]
    rep(1.0, "done")
    name = source or m.provenance.path or m.provenance.format
    return AuditReport(name, m.shape, checks, table, policy, method, time.perf_counter() - t0, family,
                       family_source)


def _family(m: EmbeddingMatrix, policy: Policy) -> tuple[str, str]:
    chosen = str(policy.get("model", "family"))
    return model_family(m) if chosen == "auto" else (chosen, f"[model] family = {chosen!r} in {policy.source}")


def _applies(check: Check, holds: bool, why_not: str) -> Check:
    """``check``, or "n/a" saying why its premise does not hold for this model (what it measured stays)."""
    if holds or check.status == "n/a":
        return check
    measured = f"{check.value:.3g}" if check.value is not None else "—"
    return replace(check, status="n/a", value=None, tokens=(), ids=(),
                   reason=f"does not apply: {why_not}. Measured anyway ({check.unit} {measured}): {check.reason}")


def _undertrained_groups(m: EmbeddingMatrix, dup: Check, under: Check, policy: Policy) -> Check:
    """Equal groups made only of under-trained tokens are a warning, not damage (see :data:`PREMISES`)."""
    exact: list[list[int]] = dup.data.get("exact", [])
    flagged = set(under.ids)
    idle = [g for g in exact if all(r in flagged for r in g)]
    if dup.status != "fail" or not idle:
        return dup
    padding = [g for g in exact if m.unassigned_from is not None and min(g) >= m.unassigned_from]
    damage = len(exact) - len(padding) - len([g for g in idle if g not in padding])
    if damage > policy.num("duplicates", "max_exact_groups"):
        return dup
    rows = sum(len(g) for g in idle)
    return replace(dup, status="warn", reason=(
        f"{dup.reason}; all {len(idle)} of the equal groups ({rows} rows) are under-trained tokens that training "
        "left at one point (see Under-trained tokens), not a copy of trained rows"
        if len(idle) == len(exact) - len(padding) else
        f"{dup.reason}; {len(idle)} of the equal groups ({rows} rows) are under-trained tokens"))


# -- the HTML report ------------------------------------------------------------------------------------
_COLORS = {"pass": "#2e7d32", "warn": "#ef8f00", "fail": "#c62828", "n/a": "#757575"}
_ICONS = {"pass": "●", "warn": "▲", "fail": "■", "n/a": "○"}


def _image_data_uri(chart: alt.Chart | alt.LayerChart) -> str:
    import altair as alt
    import vl_convert as vlc

    version: str | None = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    if version not in vlc.get_vegalite_versions():
        version = None  # vl-convert's own default
    spec = chart.to_dict()
    svg = vlc.vegalite_to_svg(spec, vl_version=version)
    if len(svg) <= 300_000:
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    # Thousands of scatter marks make a heavy SVG; a PNG of them stays small.
    png = vlc.vegalite_to_png(spec, vl_version=version, scale=2)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table_html(df: pd.DataFrame, limit: int = 100) -> str:
    shown = df.head(limit)
    more = f"<p class=more>… and {len(df) - limit} more rows (all of them are in the JSON report)</p>" \
        if len(df) > limit else ""
    return shown.to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}", border=0) + more


def render_html(report: AuditReport) -> str:
    """The report as one self-contained HTML page: charts are SVG images inside it, no scripts, no links."""
    from core import charts

    e = html.escape
    s = report.summary()
    rows = "".join(
        f"<tr><td><span class=badge style='background:{_COLORS[c.status]}'>{_ICONS[c.status]} {e(c.status)}</span>"
        f"</td><td>{e(c.title)}</td><td>{'' if c.value is None else f'{c.value:.4g}'}</td><td>{e(c.unit)}</td>"
        f"<td>{e(c.reason)}</td></tr>" for c in report.checks)
    sections = []
    for c in report.checks:
        parts = [f"<h2 id='{e(c.id)}'><span class=badge style='background:{_COLORS[c.status]}'>"
                 f"{_ICONS[c.status]} {e(c.status)}</span> {e(c.title)}</h2>", f"<p>{e(c.reason)}</p>",
                 f"<p class=thr>premise: {e(c.premise)}</p>",
                 "<p class=thr>thresholds: " + e(", ".join(f"{k} = {v}" for k, v in c.threshold.items())) + "</p>"]
        chart = charts.audit_chart(c)
        if chart is not None:
            chart = chart.properties(width=760, height=240)
            parts.append(f"<img alt='{e(c.title)} chart' src='{_image_data_uri(chart)}'>")
        if c.tokens:
            shown = ", ".join(e(repr(t)) for t in c.tokens[:100])
            more = f" … and {len(c.tokens) - 100} more" if len(c.tokens) > 100 else ""
            parts.append(f"<p><b>{len(c.tokens)} token(s):</b> <code>{shown}</code>{more}</p>")
        if c.dims:
            parts.append(f"<p><b>dimensions:</b> {e(', '.join(map(str, c.dims)))}</p>")
        for key in ("rows", "groups", "facts"):
            if isinstance(c.data.get(key), pd.DataFrame) and len(c.data[key]):
                parts.append(_table_html(c.data[key]))
        if c.id == "undertrained" and len(report.undertrained):
            parts.append(f"<p>Candidates ({e(report.method)}):</p>" + _table_html(report.undertrained))
        sections.append("<section>" + "".join(parts) + "</section>")
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Embedscope health audit: {e(report.source)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9em; }} td, th {{ padding: 3px 8px; border-bottom: 1px solid #ddd;
text-align: left; vertical-align: top; }} .badge {{ color: white; border-radius: 4px; padding: 1px 7px;
font-size: 0.85em; white-space: nowrap; }} .thr, .more {{ color: #666; font-size: 0.85em; }}
img {{ max-width: 100%; }} code {{ word-break: break-all; }} section {{ margin-top: 2em; }}
</style></head><body>
<h1>Health audit</h1>
<p><b>{e(report.source)}</b> — {report.shape[0]:,} rows × {report.shape[1]} dimensions
· policy: {e(report.policy.source)} · {generated} · {report.seconds:.1f} s</p>
<p>{s['pass']} pass · {s['warn']} warn · {s['fail']} fail · {s['n/a']} n/a
· model family: {e(report.family)} ({e(report.family_source)})</p>
<table><tr><th>status</th><th>check</th><th>value</th><th>unit</th><th>why</th></tr>{rows}</table>
{''.join(sections)}
</body></html>
"""


def write_html(report: AuditReport, target: str | os.PathLike[str], force: bool = False,
               sources: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Write the self-contained HTML report atomically to a new path.

    Raises:
        OutputExistsError: ``target`` exists and ``force`` is False.
        ParameterError: ``target`` is one of the ``sources``.
    """
    from core._io import atomic_file

    text = render_html(report)
    with atomic_file(target, force=force, sources=sources) as tmp:
        tmp.write_text(text, encoding="utf-8")
        # A report is meant to be shared: the usual file mode, not the private one of a temp file.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
    return Path(target)


__all__ = ["CHECKS", "DEFAULTS", "STATUSES", "TITLES", "UNITS", "AuditReport", "Check", "Policy", "audit",
           "render_html", "token_categories", "write_html"]
