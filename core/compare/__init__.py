"""Before/after comparison of two matrices: which tokens moved, did their neighbourhoods change, is the space
better or worse — after a fine-tune, between two releases, or against a quantised copy.

    >>> import core
    >>> from core import compare
    >>> a = core.load("demo")
    >>> b = core.load("runs/finance")                  # a fine-tune of the demo
    >>> c = compare.compare(a, b, k=10)
    >>> c.aligned, c.alignment                         # doctest: +ELLIPSIS
    (False, 'none: B is a fine-tune of A ...')
    >>> c.table(top=3)[["token", "drift", "jaccard"]]  # the moved-most tokens
    >>> impact = compare.quantization_impact(a)        # fp16, bf16 and int8 copies of A
    >>> impact.frame()[["format", "mean_drift", "median_jaccard"]]

What is measured, per token both matrices hold (matched by token string):

* **drift** = 1 − cosine(a·R, b), where R is the orthogonal Procrustes rotation fitted on unit-length
  rows of the shared tokens (or of the first N of them), or the identity when no alignment is used;
* **Jaccard@k** of the token's k nearest neighbours (cosine) in A and in B. Both searches run over the
  compared tokens only, so the two neighbour sets are drawn from the same tokens; both go through
  :func:`core.search.knn`, the one batched, chunked neighbour search;
* **norm change**: |b| − |a| (a rotation keeps norms, so alignment does not touch it).

Alignment (``align=None``, the default, decides): independently trained matrices live in unrelated
coordinate systems, so they are aligned. A fine-tune of A (its ``run.json`` names A's content fingerprint
as ``source.fingerprint``), two fine-tunes of the same source, or a quantised copy share A's space: there a
rotation would only hide real movement, so none is fitted. Matrices of different dimension cannot be
rotated onto each other: they are compared by neighbourhoods only (drift is then None), and asking for
alignment is a :class:`~core.errors.ParameterError`.

Where each part lives: ``_align`` (vocabulary match, shared space, rotation, drift), ``_neighbors``
(neighbour search and Jaccard@k; ``_approx``: approximate neighbours for large vocabularies), ``_result``
(:class:`Comparison`, :class:`Summary`, :class:`TokenDetail`), ``_run`` (:func:`compare`), ``_corpus`` (rows
of a corpus's tokens), ``_joint`` (joint projection), ``_benchmarks`` (benchmark deltas), ``_quantize``
(fp16/bf16/int8 copies and writing one).
"""

from __future__ import annotations

from core.compare._align import VocabularyMatch, fit_rotation, match_vocabulary, shared_space
from core.compare._approx import SEARCHES
from core.compare._benchmarks import BenchmarkDelta, benchmark_deltas, deltas_frame
from core.compare._corpus import corpus_rows, corpus_rows_of_texts
from core.compare._joint import JointProjection, joint_projection
from core.compare._neighbors import jaccard
from core.compare._quantize import (
    QUANT_BYTES,
    QUANT_FORMATS,
    QuantImpact,
    QuantReport,
    export_quantized,
    quantization_impact,
    quantize,
    quantized_bytes,
)
from core.compare._result import SORTS, Comparison, SortKey, Summary, TokenDetail, token_detail
from core.compare._run import compare

__all__ = [
    "SortKey",
    "QUANT_BYTES",
    "QUANT_FORMATS",
    "SEARCHES",
    "SORTS",
    "BenchmarkDelta",
    "Comparison",
    "JointProjection",
    "QuantImpact",
    "QuantReport",
    "Summary",
    "TokenDetail",
    "VocabularyMatch",
    "benchmark_deltas",
    "compare",
    "corpus_rows",
    "corpus_rows_of_texts",
    "deltas_frame",
    "export_quantized",
    "fit_rotation",
    "jaccard",
    "joint_projection",
    "match_vocabulary",
    "quantization_impact",
    "quantize",
    "quantized_bytes",
    "shared_space",
    "token_detail",
]
