"""The registry of checks: each check module declares one :class:`CheckSpec` and calls :func:`register`.

Adding a check is one new module in ``core/audit/checks/``: it declares its id, title, unit, premise,
default settings with their validation rules, where it sits in the report and in the run, and the function
that runs it. Everything else (the policy's sections and validation, the runner, the CLI's help, the page,
the JSON) reads this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.audit._context import Context
    from core.audit.result import Check

PolicyValue = float | int | str | bool
Rule = Callable[[object], PolicyValue]


@dataclass(frozen=True)
class CheckSpec:
    """Everything about one check, in one place.

    Attributes:
        id: the check's id (the policy section, the JSON ``id``).
        title: what the page and the report call it.
        unit: what its value measures.
        premise: what it assumes, and for which models that holds.
        defaults: its settings with their default values ("enabled" is added for every check).
        rules: one validation rule per setting: takes the value from a policy file, returns it cleaned or
            raises ValueError saying the rule ("must be a number in [0, 1]").
        run: computes the check from the shared :class:`~core.audit._context.Context`.
        order: its place in the report.
        step: its place in the run; a check that reads another's result runs after it.
        weight: its share of the progress bar.
        label: the progress message while it runs.
        families: the model families its premise holds for (None: every family).
        why_not: for a family outside ``families``: why the premise does not hold, given (family, source).
    """

    id: str
    title: str
    unit: str
    premise: str
    defaults: Mapping[str, PolicyValue]
    rules: Mapping[str, Rule]
    run: Callable[[Context], Check]
    order: int
    step: int
    weight: float = 0.02
    label: str = ""
    families: frozenset[str] | None = None
    why_not: Callable[[str, str], str] | None = None

    def __post_init__(self) -> None:
        if set(self.defaults) != set(self.rules):
            raise TypeError(f"check {self.id!r}: settings without a rule or rules without a default: "
                            f"{sorted(set(self.defaults) ^ set(self.rules))}")


_REGISTRY: dict[str, CheckSpec] = {}


def register(spec: CheckSpec) -> CheckSpec:
    """Add a check to the registry (called once by each check module)."""
    if spec.id in _REGISTRY and _REGISTRY[spec.id] is not spec:
        raise TypeError(f"two checks are registered as {spec.id!r}")
    _REGISTRY[spec.id] = spec
    return spec


def specs() -> tuple[CheckSpec, ...]:
    """Every check, in report order (the check modules are imported on the first call)."""
    import core.audit.checks  # noqa: F401  (its import registers every check module)

    return tuple(sorted(_REGISTRY.values(), key=lambda s: s.order))


def spec(check_id: str) -> CheckSpec:
    """The spec of one check (KeyError for an unknown id)."""
    return {s.id: s for s in specs()}[check_id]
