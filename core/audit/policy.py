"""The audit policy: thresholds for every check, the defaults overridden section by section from TOML.

    [duplicates]
    cosine = 0.9995
    [model]
    family = "decoder"

Sections and settings come from the checks' registry; an unknown section or setting, or a value that breaks
its rule, is a :class:`~core.errors.ParameterError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from core._family import FAMILIES
from core.audit._spec import PolicyValue, Rule, specs
from core.errors import ParameterError

__all__ = ["Policy", "PolicyValue", "boolean", "choice", "defaults", "language", "number", "rules"]


def number(lo: float, hi: float, integer: bool = False, lo_open: bool = False) -> Rule:
    """A rule: a number (a whole one when ``integer``) in [lo, hi], or (lo, hi] when ``lo_open``."""
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


def boolean(v: object) -> PolicyValue:
    """A rule: true or false."""
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def choice(*options: str) -> Callable[[object], PolicyValue]:
    """A rule: one of ``options``."""
    def check(v: object) -> PolicyValue:
        if v not in options:
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return str(v)

    return check


def language(v: object) -> PolicyValue:
    """A rule: a language code wordfreq has a list for."""
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


# Not a check: what kind of model the matrix comes from, which decides where a check's premise holds.
_MODEL_DEFAULTS: dict[str, PolicyValue] = {"family": "auto"}
_MODEL_RULES: dict[str, Rule] = {"family": choice("auto", *FAMILIES)}


def defaults() -> dict[str, dict[str, PolicyValue]]:
    """Every section's default settings, checks in report order, then ``model``."""
    out: dict[str, dict[str, PolicyValue]] = {s.id: {"enabled": True, **s.defaults} for s in specs()}
    out["model"] = dict(_MODEL_DEFAULTS)
    return out


def rules() -> dict[str, dict[str, Rule]]:
    """Every section's validation rules."""
    out: dict[str, dict[str, Rule]] = {s.id: {"enabled": boolean, **s.rules} for s in specs()}
    out["model"] = dict(_MODEL_RULES)
    return out


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
        all_rules = rules()
        items: list[tuple[str, str, PolicyValue]] = []
        for check, section in data.items():
            if check == "gate":  # the release gate's section: one file serves audit and gate alike
                from core.gate import GateSettings

                if not isinstance(section, Mapping):
                    raise ParameterError(f"policy {where}: 'gate' must be a table ([gate] with settings)")
                GateSettings.from_mapping(section, where)
                continue
            if check not in all_rules:
                raise ParameterError(f"policy {where}: unknown check {check!r}; the checks are "
                                     f"{', '.join(s.id for s in specs())} (and [model] family, [gate])")
            if not isinstance(section, Mapping):
                raise ParameterError(f"policy {where}: {check!r} must be a table ([{check}] with settings)")
            for key, value in section.items():
                rule = all_rules[check].get(key)
                if rule is None:
                    raise ParameterError(f"policy {where}: unknown setting {check}.{key}; settings of [{check}]: "
                                         f"{', '.join(all_rules[check])}")
                try:
                    items.append((check, key, rule(value)))
                except ValueError as err:
                    raise ParameterError(f"policy {where}: {check}.{key} = {value!r} {err}") from err
        return cls(tuple(sorted(items)), where)

    def section(self, check: str) -> dict[str, PolicyValue]:
        """Every setting of ``check``, defaults filled in."""
        out = dict(defaults()[check])
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
        for check in defaults():
            lines.append(f"\n[{check}]")
            for k, v in self.section(check).items():
                val = ("true" if v else "false") if isinstance(v, bool) else json.dumps(v)
                lines.append(f"{k} = {val}")
        return "\n".join(lines) + "\n"
