"""Benchmark deltas: analogy accuracy and word-pair correlations on A and on B."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.compare._common import _span
from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter

if TYPE_CHECKING:
    import pandas as pd

    from core.evaluate import AnalogySet, PairSet


@dataclass(frozen=True)
class BenchmarkDelta:
    """One benchmark's score on A and on B (analogy accuracy, or word-pair Spearman/Pearson)."""

    benchmark: str
    metric: str
    a: float
    b: float
    coverage_a: float
    coverage_b: float

    @property
    def delta(self) -> float:
        return self.b - self.a

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "metric": self.metric, "a": self.a, "b": self.b,
                "delta": self.delta, "coverage_a": self.coverage_a, "coverage_b": self.coverage_b}


def benchmark_deltas(a: EmbeddingMatrix, b: EmbeddingMatrix,
                     analogies: Sequence[str | os.PathLike[str] | AnalogySet] = (),
                     pairs: Sequence[str | os.PathLike[str] | PairSet] = (), *,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> list[BenchmarkDelta]:
    """Analogy accuracy and word-pair correlations on A and on B (through :mod:`core.evaluate`).

    Cosine scores do not change under a rotation, so these need no alignment.

    Raises:
        FormatError: a malformed or unknown benchmark file. Cancelled: through ``cancel``.
    """
    from core import evaluate

    report = Reporter(progress, cancel)
    jobs = len(analogies) + len(pairs)
    if jobs == 0:
        raise ParameterError("benchmarks: give at least one analogy or word-pair file")
    out: list[BenchmarkDelta] = []
    done = 0
    for src in analogies:
        res = []
        for j, m in enumerate((a, b)):
            res.append(evaluate.evaluate_analogies(
                m, src, progress=_span(report, (done + j / 2) / jobs, (done + (j + 1) / 2) / jobs,
                                       f"analogies on {'AB'[j]}"), cancel=cancel))
        out.append(BenchmarkDelta(res[0].file, "analogy accuracy", res[0].accuracy, res[1].accuracy,
                                  res[0].coverage, res[1].coverage))
        done += 1
    for pair_src in pairs:
        report(done / jobs, "word pairs")
        pa, pb = evaluate.evaluate_pairs(a, pair_src), evaluate.evaluate_pairs(b, pair_src)
        cov_a = pa.pairs / max(pa.pairs + pa.oov, 1)
        cov_b = pb.pairs / max(pb.pairs + pb.oov, 1)
        out.append(BenchmarkDelta(pa.file, "Spearman", pa.spearman, pb.spearman, cov_a, cov_b))
        out.append(BenchmarkDelta(pa.file, "Pearson", pa.pearson, pb.pearson, cov_a, cov_b))
        done += 1
    report(1.0, "done")
    return out


def deltas_frame(deltas: Sequence[BenchmarkDelta]) -> pd.DataFrame:
    """benchmark, metric, A, B, delta, coverage in A and B: one row per delta."""
    import pandas as pd

    return pd.DataFrame([{"benchmark": Path(d.benchmark).name or d.benchmark, "metric": d.metric, "A": d.a,
                          "B": d.b, "delta": d.delta, "coverage A": d.coverage_a, "coverage B": d.coverage_b}
                         for d in deltas], columns=["benchmark", "metric", "A", "B", "delta", "coverage A",
                                                    "coverage B"])


