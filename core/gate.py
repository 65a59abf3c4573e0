"""The release gate: can this model ship? One verdict from the audit of the new matrix, its comparison with
the last release, and the quantised copy that will ship.

    >>> import core
    >>> from core.gate import gate
    >>> rep = gate(core.load("runs/finance"), core.load("demo"))   # new, baseline
    >>> rep.verdict, rep.summary()
    ('pass', {'pass': 15, 'warn': 3, 'fail': 0, 'n/a': 1})
    >>> [c.id for c in rep.checks if c.status != "pass"]

Checks, each with a status, a value, the thresholds and the evidence tokens:

- every check of :func:`core.audit.audit` on NEW (its policy sections reused);
- against the baseline: ``vocabulary`` (tokens added, removed, re-numbered; a re-numbered token fails unless
  ``allow_renumbered``), ``changed_rows`` (shared tokens whose row changed at all), ``drift`` (Procrustes drift,
  mean and p99), ``jaccard_frequent`` (Jaccard@k over the N most frequent shared tokens), ``jaccard_all``
  (over every shared token, on request), ``moved`` (the tokens that moved most), ``became_undertrained``
  (under-trained in NEW, not in the baseline), ``special_tokens`` (special and chat-template tokens whose rows
  changed or went under-trained) and ``new_bad_rows`` (NaN, zero or duplicate rows the baseline did not have);
- of the quantised copy: ``quantized_drift``, ``quantized_jaccard`` and ``quantized_error`` (per-row relative
  error).

Identical matrices pass with zero drift. The thresholds are the ``[gate]`` section of the audit policy file.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core._checkjson import check_json
from core._status import FAIL_ON, SEVERITY, STATUSES, FailOn, Status, worst_of
from core.errors import ParameterError, check_choice
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

#: The gate's answer: ship ("pass"), ship and read the warnings ("warn"), or do not ship ("fail").
Verdict = Literal["pass", "warn", "fail"]

#: The ``[gate]`` settings and their defaults (drift is 1 − cosine after alignment; Jaccard@k in [0, 1]).
GATE_DEFAULTS: dict[str, float | bool | int] = {
    "allow_renumbered": False, "k": 10, "top_n": 50_000, "all_tokens": False,
    "drift_mean_warn": 0.05, "drift_mean_fail": 0.25, "drift_p99_warn": 0.5, "drift_p99_fail": 1.0,
    "jaccard_warn": 0.8, "jaccard_fail": 0.5, "undertrained_warn": 1, "undertrained_fail": 50,
    "quantized_jaccard_warn": 0.9, "quantized_jaccard_fail": 0.7,
    "quantized_error_warn": 0.05, "quantized_error_fail": 0.2,
}


@dataclass(frozen=True)
class GateSettings:
    """The ``[gate]`` section: thresholds with the defaults filled in."""

    values: tuple[tuple[str, float | bool | int], ...] = ()

    @classmethod
    def from_mapping(cls, section: Mapping[str, object], where: str = "policy") -> GateSettings:
        """Validate ``[gate]`` settings.

        Raises:
            ParameterError: an unknown key (naming it and the known ones) or a value of the wrong kind.
        """
        out: dict[str, float | bool | int] = {}
        for key, value in section.items():
            if key not in GATE_DEFAULTS:
                raise ParameterError(f"policy {where}: unknown setting gate.{key}; settings of [gate]: "
                                     f"{', '.join(GATE_DEFAULTS)}")
            default = GATE_DEFAULTS[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ParameterError(f"policy {where}: gate.{key} = {value!r} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ParameterError(f"policy {where}: gate.{key} = {value!r} must be a number ≥ 0")
            out[key] = value
        return cls(tuple(sorted(out.items())))

    def get(self, key: str) -> Any:
        return dict(self.values).get(key, GATE_DEFAULTS[key])


@dataclass(frozen=True)
class GateCheck:
    """One named check of the gate."""

    id: str
    title: str
    status: Status
    value: float | None
    threshold: dict[str, Any]
    reason: str
    tokens: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self, max_tokens: int = 200) -> dict[str, Any]:
        """The ``checks[]`` entry of ``embedscope gate --json``."""
        return check_json(self, max_tokens)


def _provenance(m: EmbeddingMatrix) -> dict[str, Any]:
    p = m.provenance
    return {"path": p.path, "format": p.format, "tensor": p.tensor, "dtype": p.dtype, "rows": m.shape[0],
            "dim": m.shape[1], "file_bytes": p.file_bytes, "fingerprint": m.fingerprint,
            "vocab_source": p.vocab_source}


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict and every check, with the audit and comparisons it came from."""

    new: dict[str, Any]
    baseline: dict[str, Any] | None
    quantized: dict[str, Any] | None
    checks: tuple[GateCheck, ...]
    fail_on: FailOn
    seconds: float
    audit: Any = field(compare=False, repr=False, default=None)
    comparison: Any = field(compare=False, repr=False, default=None)
    notes: tuple[str, ...] = ()

    @property
    def worst(self) -> Status:
        return worst_of(c.status for c in self.checks)

    @property
    def verdict(self) -> Verdict:
        """"fail" when a check reached ``fail_on``, else the worst status ("warn" or "pass")."""
        worst = self.worst
        if worst == "warn" and self.fail_on == "warn":
            return "fail"
        return "fail" if worst == "fail" else ("warn" if worst == "warn" else "pass")

    @property
    def ships(self) -> bool:
        return self.verdict != "fail"

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for c in self.checks:
            counts[c.status] += 1
        return counts

    def check(self, check_id: str) -> GateCheck:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise ParameterError(f"check={check_id!r}: the gate has {', '.join(c.id for c in self.checks)}")

    def to_json(self) -> dict[str, Any]:
        """The ``embedscope gate --json`` object (a public contract: keys are added, never renamed)."""
        moved = self.comparison.moved(20) if self.comparison is not None else []
        return {"verdict": self.verdict, "new": self.new, "baseline": self.baseline, "quantized": self.quantized,
                "checks": [c.to_json() for c in self.checks], "summary": self.summary(), "fail_on": self.fail_on,
                "moved": moved, "notes": list(self.notes), "seconds": round(self.seconds, 3)}


def _status(value: float, warn: float, fail: float, higher_is_worse: bool = True) -> Status:
    if not higher_is_worse:
        value, warn, fail = -value, -warn, -fail
    return "fail" if value >= fail else ("warn" if value >= warn else "pass")


def _worst(*statuses: Status) -> Status:
    return max(statuses, key=lambda s: SEVERITY[s])


def _from_audit(report: Any) -> list[GateCheck]:
    return [GateCheck(c.id, c.title, c.status, c.value, dict(c.threshold), c.reason, tuple(c.tokens))
            for c in report.checks]


def _special_rows(m: EmbeddingMatrix) -> set[str]:
    """Special tokens of the tokenizer and the tokens its chat template emits."""
    from core.template import template_tokens

    out = {t for t in m.tokenizer.special_tokens if t in m.key_to_index}
    rep = template_tokens(m)
    out.update(t.token for t in rep.emitted)
    return out


def frequent_tokens(m: EmbeddingMatrix, candidates: Sequence[str], n: int) -> list[str]:
    """The ``n`` most frequent of ``candidates``: by wordfreq (English) where the tokens are words or pieces,
    by the file's own order for word2vec/GloVe files (sorted by frequency)."""
    if len(candidates) <= n:
        return list(candidates)
    if m.provenance.format in ("word2vec-text", "word2vec-binary", "glove"):
        return sorted(candidates, key=m.key_to_index.__getitem__)[:n]
    from wordfreq import zipf_frequency

    from core.tokens import strip_marker

    scheme = m.tokenizer.scheme
    score = {t: zipf_frequency(strip_marker(t, scheme)[0], "en") for t in candidates}
    return sorted(candidates, key=lambda t: (-score[t], m.key_to_index[t]))[:n]


def _bad_rows(m: EmbeddingMatrix, tokens: Sequence[str]) -> set[str]:
    """Tokens among ``tokens`` whose rows hold NaN/Inf, are all zero, or equal another of these rows."""
    rows = m.get_indices(tokens)
    bad: set[str] = set()
    step = max(1, (1 << 22) // max(1, m.dim))
    digests: dict[bytes, str] = {}
    for s in range(0, rows.size, step):
        block = np.asarray(m.vectors[rows[s:s + step]], dtype=np.float32)
        broken = np.asarray(~np.isfinite(block).all(axis=1) | ~block.any(axis=1), dtype=bool)
        for j in range(block.shape[0]):
            tok = tokens[s + j]
            if broken[j]:
                bad.add(tok)
                continue
            key = block[j].tobytes()
            other = digests.setdefault(key, tok)
            if other != tok:
                bad.update((tok, other))
    return bad


def _against_baseline(new: EmbeddingMatrix, old: EmbeddingMatrix, settings: GateSettings, new_audit: Any,
                      old_audit: Any, report: Reporter, cancel: CancelFn | None) -> tuple[list[GateCheck], Any,
                                                                                          list[str]]:
    from core.compare import compare

    checks: list[GateCheck] = []
    notes: list[str] = []
    shared = [t for t in old.index_to_key if t in new.key_to_index]
    added = [t for t in new.index_to_key if t not in old.key_to_index]
    removed = [t for t in old.index_to_key if t not in new.key_to_index]
    renumbered = [t for t in shared if old.key_to_index[t] != new.key_to_index[t]]
    allow = bool(settings.get("allow_renumbered"))
    status: Status = "fail" if renumbered and not allow else ("warn" if removed or renumbered else "pass")
    checks.append(GateCheck(
        "vocabulary", "Vocabulary diff", status, float(len(added) + len(removed) + len(renumbered)),
        {"allow_renumbered": allow},
        f"{len(added):,} tokens added, {len(removed):,} removed, {len(renumbered):,} re-numbered of {len(shared):,} "
        "shared" + (" (re-numbering allowed by the policy)" if renumbered and allow else ""),
        tuple(renumbered[:100] + removed[:100] + added[:100]),
        {"added": added, "removed": removed, "renumbered": renumbered}))
    if not shared:
        raise ParameterError("the new matrix and the baseline share no token; tokens are matched by exact string")
    rows_new, rows_old = new.get_indices(shared), old.get_indices(shared)
    same_dim = new.dim == old.dim
    if not same_dim:
        notes.append(f"the baseline has {old.dim} dimensions and the new matrix {new.dim}: only neighbourhoods are "
                     "compared (no drift, no changed rows)")
        checks.append(GateCheck("changed_rows", "Rows that changed", "n/a", None, {},
                                "different dimensions: rows cannot be compared"))
    else:
        changed: list[str] = []
        step = max(1, (1 << 22) // max(1, new.dim))
        for s in range(0, len(shared), step):
            a = np.asarray(old.vectors[rows_old[s:s + step]])
            b = np.asarray(new.vectors[rows_new[s:s + step]])
            diff = ~((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
            changed.extend(shared[s + j] for j in np.flatnonzero(diff).tolist())
        checks.append(GateCheck("changed_rows", "Rows that changed", "pass", float(len(changed)), {},
                                f"{len(changed):,} of {len(shared):,} shared tokens have a different row",
                                tuple(changed[:200]), {"changed": changed}))
    report(0.45, "comparing neighbourhoods")
    k = int(settings.get("k"))
    top_n = int(settings.get("top_n"))
    # rows holding NaN/Inf have no direction to compare (new_bad_rows reports them); the rest are compared
    finite = np.isfinite(new.norms[rows_new]) & np.isfinite(old.norms[rows_old])
    comparable = [t for t, ok in zip(shared, finite.tolist(), strict=True) if ok]
    if len(comparable) < len(shared):
        notes.append(f"{len(shared) - len(comparable):,} shared tokens have NaN/Inf rows and are left out of drift "
                     "and Jaccard")
    freq = frequent_tokens(new, comparable, top_n)
    comparison = compare(old, new, k=k, tokens=freq, cancel=cancel)
    summ = comparison.summary()
    if comparison.drift is not None:
        mean_d, p99 = float(summ.mean_drift or 0.0), float(summ.p99_drift or 0.0)
        st = _worst(_status(mean_d, settings.get("drift_mean_warn"), settings.get("drift_mean_fail")),
                    _status(p99, settings.get("drift_p99_warn"), settings.get("drift_p99_fail")))
        top = comparison.order("drift")[:20].tolist()
        checks.append(GateCheck(
            "drift", "Drift after alignment", st, mean_d,
            {k_: settings.get(k_) for k_ in ("drift_mean_warn", "drift_mean_fail", "drift_p99_warn", "drift_p99_fail")},
            f"mean drift {mean_d:.4g}, p99 {p99:.4g} (1 − cosine; {comparison.alignment})",
            tuple(comparison.tokens[i] for i in top), {"p99": p99}))
    else:
        checks.append(GateCheck("drift", "Drift after alignment", "n/a", None, {}, comparison.alignment))
    jac = float(comparison.jaccard.mean())
    jthr = {k_: settings.get(k_) for k_ in ("jaccard_warn", "jaccard_fail")}
    worst = comparison.order("jaccard")[:20].tolist()
    checks.append(GateCheck(
        "jaccard_frequent", f"Jaccard@{k} of the {len(freq):,} most frequent tokens",
        _status(jac, jthr["jaccard_warn"], jthr["jaccard_fail"], higher_is_worse=False), jac, jthr,
        f"mean Jaccard@{k} {jac:.4f} over {len(freq):,} tokens "
        f"({'all shared' if len(freq) == len(comparable) else 'the most frequent'})",
        tuple(comparison.tokens[i] for i in worst)))
    if len(freq) == len(comparable):
        checks.append(GateCheck("jaccard_all", f"Jaccard@{k} of every token", checks[-1].status, jac, jthr,
                                "every shared token is among the most frequent ones: the same figure",
                                checks[-1].tokens))
    elif settings.get("all_tokens"):
        report(0.7, "neighbourhoods of every token")
        every = compare(old, new, k=k, tokens=comparable, cancel=cancel)
        ja = float(every.jaccard.mean())
        checks.append(GateCheck("jaccard_all", f"Jaccard@{k} of every token",
                                _status(ja, jthr["jaccard_warn"], jthr["jaccard_fail"], higher_is_worse=False), ja,
                                jthr, f"mean Jaccard@{k} {ja:.4f} over {every.compared:,} tokens",
                                tuple(every.tokens[i] for i in every.order("jaccard")[:20].tolist())))
    else:
        checks.append(GateCheck("jaccard_all", f"Jaccard@{k} of every token", "n/a", None, jthr,
                                f"not requested: {len(shared):,} shared tokens; set gate.all_tokens = true "
                                "(--all-tokens)"))
    moved = comparison.moved(20)
    checks.append(GateCheck("moved", "Tokens that moved most", "pass",
                            float(moved[0]["drift"]) if moved and moved[0]["drift"] is not None else None, {},
                            "the most moved tokens, for the record", tuple(m["token"] for m in moved)))
    report(0.85, "under-trained and special tokens")
    new_under = set(new_audit.check("undertrained").tokens)
    old_under = set(old_audit.check("undertrained").tokens) if old_audit is not None else set()
    became = [t for t in new.index_to_key if t in new_under and t not in old_under and t in old.key_to_index]
    checks.append(GateCheck(
        "became_undertrained", "Tokens that became under-trained",
        "pass" if not became else _status(len(became), settings.get("undertrained_warn"),
                                          settings.get("undertrained_fail")),
        float(len(became)), {k_: settings.get(k_) for k_ in ("undertrained_warn", "undertrained_fail")},
        f"{len(became):,} tokens are under-trained in the new matrix and were not in the baseline", tuple(became)))
    special = sorted(_special_rows(new) & set(shared), key=new.key_to_index.__getitem__)
    changed_set = set(checks[1].data.get("changed", ()))
    sp_changed = [t for t in special if t in changed_set]
    sp_under = [t for t in special if t in new_under and t not in old_under]
    st_sp: Status = "fail" if sp_under else ("warn" if sp_changed else "pass")
    checks.append(GateCheck("special_tokens", "Special and template tokens", st_sp, float(len(sp_under)), {},
                            f"{len(special)} special/template tokens: {len(sp_changed)} changed rows, "
                            f"{len(sp_under)} became under-trained", tuple(sp_under + sp_changed)))
    bad_new, bad_old = _bad_rows(new, shared), _bad_rows(old, shared)
    fresh = [t for t in shared if t in bad_new and t not in bad_old]
    checks.append(GateCheck("new_bad_rows", "New NaN, zero or duplicate rows", "fail" if fresh else "pass",
                            float(len(fresh)), {}, f"{len(fresh):,} rows are NaN, zero or duplicates in the new "
                            "matrix and were not in the baseline", tuple(fresh)))
    return checks, comparison, notes


def _quantized_checks(new: EmbeddingMatrix, q: EmbeddingMatrix, settings: GateSettings,
                      cancel: CancelFn | None) -> list[GateCheck]:
    from core.compare import compare

    k = int(settings.get("k"))
    shared = [t for t in new.index_to_key if t in q.key_to_index]
    freq = frequent_tokens(new, shared, int(settings.get("top_n")))
    c = compare(new, q, k=k, tokens=freq, align=False, cancel=cancel)
    s = c.summary()
    checks: list[GateCheck] = []
    if c.drift is not None:
        checks.append(GateCheck("quantized_drift", "Quantised copy: drift", "pass", s.mean_drift, {},
                                f"mean drift {float(s.mean_drift or 0):.3g}, p99 {float(s.p99_drift or 0):.3g}",
                                tuple(c.tokens[i] for i in c.order("drift")[:20].tolist())))
        a = np.asarray(new.vectors[c.rows_a], dtype=np.float64)
        b = np.asarray(q.vectors[c.rows_b], dtype=np.float64)
        na = np.linalg.norm(a, axis=1)
        rel = np.linalg.norm(b - a, axis=1) / np.where(na > 0, na, 1.0)
        p99 = float(np.percentile(rel, 99))
        thr = {k_: settings.get(k_) for k_ in ("quantized_error_warn", "quantized_error_fail")}
        worst = np.argsort(-rel)[:20].tolist()
        checks.append(GateCheck(
            "quantized_error", "Quantised copy: per-row relative error",
            _status(p99, thr["quantized_error_warn"], thr["quantized_error_fail"]), p99, thr,
            f"relative error per row |q − x| / |x|: mean {rel.mean():.3g}, p99 {p99:.3g}, max {rel.max():.3g}",
            tuple(c.tokens[i] for i in worst),
            {"percentiles": {str(p): float(v) for p, v in zip((50, 90, 99, 100), np.percentile(rel, [50, 90, 99, 100]),
                                                                strict=True)}}))
    jac = float(c.jaccard.mean())
    thr = {k_: settings.get(k_) for k_ in ("quantized_jaccard_warn", "quantized_jaccard_fail")}
    checks.append(GateCheck("quantized_jaccard", f"Quantised copy: Jaccard@{k}",
                            _status(jac, thr["quantized_jaccard_warn"], thr["quantized_jaccard_fail"],
                                    higher_is_worse=False), jac, thr,
                            f"mean Jaccard@{k} {jac:.4f} over {c.compared:,} tokens",
                            tuple(c.tokens[i] for i in c.order("jaccard")[:20].tolist())))
    return checks


def gate(new: EmbeddingMatrix, baseline: EmbeddingMatrix | None = None, *, quantized: EmbeddingMatrix | None = None,
         policy: Any = None, settings: GateSettings | None = None, fail_on: FailOn = "fail",
         progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> GateReport:
    """Decide whether ``new`` can ship, against ``baseline`` (the last release) and its ``quantized`` copy.

    Args:
        policy: the audit policy (:class:`core.audit.Policy`); settings: its ``[gate]`` section.
        fail_on: "fail" (default) or "warn": the status that makes the verdict "fail".

    Raises:
        ParameterError: a bad ``fail_on``, or matrices that share no token.
        Cancelled: through ``cancel``.
    """
    from core.audit import Policy, audit

    level = check_choice("fail_on", fail_on, FAIL_ON, "must be 'fail' or 'warn'")
    t0 = time.perf_counter()
    report = Reporter(progress, cancel)
    settings = settings or GateSettings()
    policy = policy or Policy()
    report(0.0, "auditing the new matrix")
    new_audit = audit(new, policy, cancel=cancel,
                      progress=lambda f, msg: report(0.3 * f, f"audit of the new matrix: {msg}"))
    checks = _from_audit(new_audit)
    comparison = None
    notes: list[str] = []
    if baseline is not None:
        report(0.3, "auditing the baseline")
        old_audit = new_audit if baseline.fingerprint == new.fingerprint else audit(
            baseline, policy, cancel=cancel,
            progress=lambda f, msg: report(0.3 + 0.15 * f, f"audit of the baseline: {msg}"))
        more, comparison, notes = _against_baseline(new, baseline, settings, new_audit, old_audit, report, cancel)
        checks.extend(more)
    if quantized is not None:
        report(0.9, "the quantised copy")
        checks.extend(_quantized_checks(new, quantized, settings, cancel))
    report(1.0, "done")
    return GateReport(_provenance(new), None if baseline is None else _provenance(baseline),
                      None if quantized is None else _provenance(quantized), tuple(checks), level,
                      time.perf_counter() - t0, new_audit, comparison, tuple(notes))


def load_policy(path: str | os.PathLike[str]) -> tuple[Any, GateSettings]:
    """The audit policy and the ``[gate]`` section of one TOML file (one file for audit and gate alike).

    Raises:
        ParameterError: unreadable, not TOML, or an unknown check, setting or bad value (naming the key).
    """
    import tomllib

    from core.audit import Policy

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(f"policy file {p}: cannot be read ({err}); give a UTF-8 TOML file") from err
    except tomllib.TOMLDecodeError as err:
        raise ParameterError(f"policy file {p}: not valid TOML ({err})") from err
    section = data.pop("gate", {})
    if not isinstance(section, dict):
        raise ParameterError(f"policy file {p}: 'gate' must be a table ([gate] with settings)")
    return Policy.from_mapping(data, str(p)), GateSettings.from_mapping(section, str(p))
