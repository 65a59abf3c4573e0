"""What a check is given: the matrix, the policy, the shared scan and sample, and the results so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.audit._shared import Sample, Scan, Stage, without_dims
from core.audit.policy import Policy
from core.audit.result import Check
from core.matrix import EmbeddingMatrix


@dataclass
class Context:
    """One audit's shared state, handed to every check's ``run`` in run order.

    Attributes:
        m: the matrix.
        policy: the thresholds.
        scan: one pass over every row (norms, damage, sums, content hashes).
        sample: a seeded sample of rows (cosine distribution, the near-duplicate bound's directions).
        rng: the audit's seeded generator; checks draw from it in run order, so results are reproducible.
        family, family_source: the kind of model and what said so.
        stage: the running check's slice of the progress bar.
        results: the checks that ran before this one, by id.
    """

    m: EmbeddingMatrix
    policy: Policy
    scan: Scan
    sample: Sample
    rng: np.random.Generator
    family: str
    family_source: str
    stage: Stage
    results: dict[str, Check] = field(default_factory=dict)
    _norm_scan: Scan | None = None

    @property
    def norm_scan(self) -> Scan:
        """The scan whose norms leave out failing rogue dimensions (they swamp every norm too)."""
        if self._norm_scan is None:
            rogue = self.results.get("rogue_dimensions")
            self._norm_scan = self.scan
            if rogue is not None and rogue.status == "fail" and rogue.dims:
                self._norm_scan = without_dims(self.m, self.scan, rogue.dims)
        return self._norm_scan
