"""Standard benchmarks: word analogies (questions-words.txt) and word-pair similarity (WordSim353, SimLex).

The numbers are gensim's, so they can be quoted next to published ones: :func:`evaluate_analogies` is
``KeyedVectors.evaluate_word_analogies`` (same accuracy, same per-section counts, same ``restrict_vocab``
and case-insensitive handling) and :func:`evaluate_pairs` is ``evaluate_word_pairs`` (Pearson, Spearman,
out-of-vocabulary ratio in percent). Analogies are answered in batches through
:func:`core.search.knn`, one matrix product per block of questions, instead of one search per question.

    >>> import core
    >>> from core import evaluate
    >>> m = core.load("demo")
    >>> res = evaluate.evaluate_analogies(m, "questions-words.txt")   # gensim's copy, by name
    >>> res.correct, res.total, round(res.accuracy, 4)
    (9171, 12154, 0.7546)
    >>> round(evaluate.evaluate_pairs(m, "wordsim353.tsv").spearman, 4)
    0.7752

Unlike gensim, a malformed line is not skipped silently: it raises :class:`~core.errors.FormatError`
naming the file and line number.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core._benchmark_files import (
    STANDARD_SETS,
    AnalogySection,
    AnalogySet,
    PairSet,
    WordPair,
    parse_analogies,
    parse_pairs,
    read_analogies,
    read_pairs,
    resolve_benchmark,
    standard_sets,
)
from core.errors import FormatError, ParameterError, check_choice
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.search import METHODS, AnalogyMethod, cosmul_knn, knn_of_sums

if TYPE_CHECKING:
    import pandas as pd

#: gensim's default: questions with a word outside the first 300,000 rows are skipped.
RESTRICT_VOCAB = 300_000
#: Candidates kept per analogy question, as gensim's ``evaluate_word_analogies`` does.
_TOPN = 5


# ================================================================================================
# The vocabulary a benchmark sees
# ================================================================================================
class _OkVocab:
    """gensim's ``ok_vocab``: the first ``restrict_vocab`` keys, upper-cased when case-insensitive, the first
    (most frequent) row winning among case variants.

    A view of the matrix's own key index (:attr:`EmbeddingMatrix.upper_key_to_index` when case-insensitive),
    which the matrix builds once: a second benchmark on the same matrix does not walk its vocabulary again.
    """

    def __init__(self, m: EmbeddingMatrix, restrict_vocab: int, case_insensitive: bool) -> None:
        if (isinstance(restrict_vocab, bool) or not isinstance(restrict_vocab, (int, np.integer))
                or restrict_vocab < 1):
            raise ParameterError(f"restrict_vocab must be a whole number of at least 1; got {restrict_vocab!r}")
        self._index = m.upper_key_to_index if case_insensitive else m.key_to_index
        self._n = int(restrict_vocab)

    def get(self, key: str, default: int | None = None) -> int | None:
        i = self._index.get(key)
        return i if i is not None and i < self._n else default

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None


# ================================================================================================
# Analogies
# ================================================================================================
@dataclass(frozen=True)
class SectionScore:
    """Correct answers and evaluated questions of one section."""

    section: str
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """correct / total, 0.0 when nothing was evaluated (as gensim reports)."""
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class AnalogyResult:
    """Result of :func:`evaluate_analogies`.

    Attributes:
        file: the benchmark's name or path.
        sections: per section, in file order (sections whose questions were all skipped have total 0).
        questions: questions in the file; ``skipped``: those with a word outside the vocabulary.
        details: one row per question (section, line, a, b, c, expected, predicted, correct, oov).
    """

    file: str
    sections: list[SectionScore]
    questions: int
    skipped: int
    restrict_vocab: int
    case_insensitive: bool
    method: AnalogyMethod
    details: pd.DataFrame = field(repr=False, compare=False)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.sections)

    @property
    def total(self) -> int:
        return sum(s.total for s in self.sections)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def coverage(self) -> float:
        """Share of questions whose four words are all in the (restricted) vocabulary."""
        return (self.questions - self.skipped) / self.questions if self.questions else 0.0

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``evaluate --json`` "analogies" shape (plus coverage and settings)."""
        return {"file": self.file, "accuracy": self.accuracy, "correct": self.correct, "total": self.total,
                "questions": self.questions, "skipped_oov": self.skipped, "coverage": self.coverage,
                "restrict_vocab": self.restrict_vocab, "case_insensitive": self.case_insensitive,
                "method": self.method,
                "sections": [{"section": s.section, "correct": s.correct, "total": s.total,
                              "accuracy": s.accuracy} for s in self.sections]}


def _unit(m: EmbeddingMatrix, ids: np.ndarray) -> np.ndarray:
    """gensim's ``get_vector(key, norm=True)`` for many rows: the row divided by its float32 norm."""
    rows = np.asarray(m.vectors[ids], dtype=np.float32)
    norms = m.norms[ids]
    return rows / np.where(norms > 0, norms, np.float32(1.0))[:, None]


def evaluate_analogies(m: EmbeddingMatrix, source: AnalogySet | str | os.PathLike[str],
                       restrict_vocab: int = RESTRICT_VOCAB, case_insensitive: bool = True,
                       dummy4unknown: bool = False, method: str = "add", device: str = "auto",
                       progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> AnalogyResult:
    """Accuracy on word analogies ``a : b :: c : expected`` (gensim ``evaluate_word_analogies``).

    For each question, the answer is the best of the first ``restrict_vocab`` rows for b + c − a
    (3CosAdd, or 3CosMul with ``method="mul"``), leaving out a, b and c; with ``case_insensitive``, a
    row whose upper-cased key is a, b or c is passed over too, as gensim does.

    Args:
        source: an :class:`AnalogySet`, a path, or a standard set name (``questions-words.txt``).
        restrict_vocab: only questions whose words are all in the first N rows are evaluated, and only
            those rows are candidates.
        case_insensitive: compare words upper-cased; among case variants the first row is used.
        dummy4unknown: count skipped (out-of-vocabulary) questions as wrong instead of leaving them out.
        method: "add" (3CosAdd, gensim's) or "mul" (3CosMul).
        progress, cancel: for the dashboard and the CLI; raises Cancelled when cancelled.

    Raises:
        FormatError: a malformed file. ParameterError: bad arguments. Cancelled: through ``cancel``.
    """
    import pandas as pd

    checked = check_choice("method", method, METHODS, "must be 'add' (3CosAdd) or 'mul' (3CosMul)")
    report = Reporter(progress, cancel)
    aset = (source if isinstance(source, AnalogySet)
            else read_analogies(resolve_benchmark(source), name=str(source)))
    ok_vocab = _OkVocab(m, restrict_vocab, case_insensitive)
    norm: Callable[[str], str] = str.upper if case_insensitive else str
    report(0.0, "reading questions")

    rows: list[tuple[int, int, tuple[str, str, str, str]]] = []  # (section index, line, words)
    ids: list[list[int | None]] = []
    known: list[int] = []  # indices into rows of the questions that are evaluated
    for si, section in enumerate(aset.sections):
        for line, words in section.questions:
            w = tuple(norm(x) for x in words)
            rows.append((si, line, (w[0], w[1], w[2], w[3])))
            got = [ok_vocab.get(x) for x in w]
            if None not in got:
                known.append(len(rows) - 1)
                ids.append(got)
    q_ids = np.asarray(ids, dtype=np.int64).reshape(-1, 4)

    n_scan = min(int(restrict_vocab), len(m))
    predicted_ids = np.full((len(known), _TOPN), -1, dtype=np.int64)
    if len(known):
        k = min(_TOPN, n_scan)

        def sub(fraction: float, message: str) -> None:
            report(0.02 + 0.96 * fraction, f"answering {len(known):,} questions")

        # The distinct words are the basis: their products with the matrix are shared by all questions.
        distinct, inverse = np.unique(q_ids[:, :3], return_inverse=True)
        inverse = inverse.reshape(-1, 3)
        basis = _unit(m, distinct)
        if checked == "add":
            # gensim's query: unit(b) + unit(c) - unit(a), then unit-normalised. Summed as (b - a) + c: an
            # analogy file's consecutive questions share a and b, so the search makes b - a once for them.
            weights = np.tile([1.0, -1.0, 1.0], (len(inverse), 1))
            found, _ = knn_of_sums(m, basis, inverse[:, [1, 0, 2]], weights, k, "cosine", exclude=q_ids[:, :3],
                                   restrict=n_scan, device=device, progress=sub, cancel=cancel)
        else:
            found, _ = cosmul_knn(m, basis, inverse[:, [1, 2]], inverse[:, [0]], k, exclude=q_ids[:, :3],
                                  restrict=n_scan, device=device, progress=sub, cancel=cancel)
        predicted_ids[:, :k] = found

    keys = m.index_to_key
    correct = np.zeros(len(rows), dtype=bool)
    evaluated = np.zeros(len(rows), dtype=bool)
    predicted: list[str | None] = [None] * len(rows)
    for qi, ri in enumerate(known):
        a, b, c, expected = rows[ri][2]
        ignore = {a, b, c}
        guess = None
        for i in predicted_ids[qi]:
            if i < 0:
                break
            guess = norm(keys[i])
            if guess in ok_vocab and guess not in ignore:
                break
        predicted[ri] = guess
        correct[ri] = guess == expected
        evaluated[ri] = True
    if dummy4unknown:
        evaluated[:] = True

    sec_idx = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    sections = [SectionScore(s.name, int(np.count_nonzero(correct & (sec_idx == i))),
                             int(np.count_nonzero(evaluated & (sec_idx == i))))
                for i, s in enumerate(aset.sections)]
    details = pd.DataFrame({
        "section": [aset.sections[r[0]].name for r in rows], "line": [r[1] for r in rows],
        "a": [r[2][0] for r in rows], "b": [r[2][1] for r in rows], "c": [r[2][2] for r in rows],
        "expected": [r[2][3] for r in rows], "predicted": predicted, "correct": correct,
        "oov": ~np.isin(np.arange(len(rows)), known)})
    report(1.0, "done")
    return AnalogyResult(aset.name, sections, len(rows), len(rows) - len(known), int(restrict_vocab),
                         case_insensitive, checked, details)


# ================================================================================================
# Word pairs
# ================================================================================================
@dataclass(frozen=True)
class PairsResult:
    """Result of :func:`evaluate_pairs`.

    Attributes:
        pearson, spearman: correlation of model cosine with the human scores.
        pearson_p, spearman_p: their two-tailed p-values.
        oov_ratio: percent of pairs with a word outside the vocabulary (gensim's ``oov_ratio``).
        pairs: pairs used in the correlation; ``oov``: pairs with an unknown word.
        table: one row per pair (line, word1, word2, human, model; model is NaN when skipped).
    """

    file: str
    pearson: float
    spearman: float
    pearson_p: float
    spearman_p: float
    oov_ratio: float
    pairs: int
    oov: int
    table: pd.DataFrame = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``evaluate --json`` "pairs" item shape (plus p-values and counts)."""
        return {"file": self.file, "pearson": self.pearson, "spearman": self.spearman,
                "oov_ratio": self.oov_ratio, "pearson_p": self.pearson_p, "spearman_p": self.spearman_p,
                "pairs": self.pairs, "oov": self.oov}


def evaluate_pairs(m: EmbeddingMatrix, source: PairSet | str | os.PathLike[str], delimiter: str | None = "\t",
                   encoding: str = "utf8", restrict_vocab: int = RESTRICT_VOCAB, case_insensitive: bool = True,
                   dummy4unknown: bool = False) -> PairsResult:
    """Correlation of cosine similarity with human judgements (gensim ``evaluate_word_pairs``).

    Args:
        source: a :class:`PairSet`, a path, or a standard set name (``wordsim353.tsv``, ``simlex999.txt``).
        delimiter, encoding: how the file is read (tab and UTF-8 by default, as gensim).
        restrict_vocab, case_insensitive: as in :func:`evaluate_analogies`.
        dummy4unknown: score pairs with an unknown word 0.0 instead of skipping them.

    Raises:
        FormatError: a malformed file, or no pair with both words in the vocabulary.
    """
    import pandas as pd
    from scipy import stats

    pset = (source if isinstance(source, PairSet)
            else read_pairs(resolve_benchmark(source), delimiter=delimiter, encoding=encoding, name=str(source)))
    ok_vocab = _OkVocab(m, restrict_vocab, case_insensitive)
    norm: Callable[[str], str] = str.upper if case_insensitive else str
    ia = np.array([ok_vocab.get(norm(p.a), -1) for p in pset.pairs], dtype=np.int64)
    ib = np.array([ok_vocab.get(norm(p.b), -1) for p in pset.pairs], dtype=np.int64)
    known = (ia >= 0) & (ib >= 0)
    model = np.full(len(pset.pairs), np.nan)
    if known.any():
        va = np.asarray(m.vectors[ia[known]], dtype=np.float64)
        vb = np.asarray(m.vectors[ib[known]], dtype=np.float64)
        na, nb = np.linalg.norm(va, axis=1), np.linalg.norm(vb, axis=1)
        model[known] = np.einsum("ij,ij->i", va, vb) / np.where(na * nb > 0, na * nb, 1.0)
    gold = np.array([p.score for p in pset.pairs])
    used = np.ones(len(gold), dtype=bool) if dummy4unknown else known
    model_used = np.where(known, model, 0.0)[used]
    gold_used = gold[used]
    n_oov = int(np.count_nonzero(~known))
    if not len(gold_used):
        raise FormatError(f"{pset.name}: none of the {len(gold)} pairs has both words in the vocabulary "
                          f"(first {restrict_vocab:,} rows, {'ignoring' if case_insensitive else 'matching'} "
                          "case); is this the right file for this model?")
    if len(gold_used) < 3:
        raise FormatError(f"{pset.name}: only {len(gold_used)} pair(s) have both words in the vocabulary; "
                          "a correlation needs at least 3")
    pearson = stats.pearsonr(gold_used, model_used)
    spearman = stats.spearmanr(gold_used, model_used)
    oov_ratio = (n_oov / len(gold_used) if dummy4unknown else n_oov / (len(gold_used) + n_oov)) * 100
    table = pd.DataFrame({"line": [p.line for p in pset.pairs], "word1": [p.a for p in pset.pairs],
                          "word2": [p.b for p in pset.pairs], "human": gold, "model": model, "oov": ~known})
    return PairsResult(pset.name, float(pearson[0]), float(spearman[0]), float(pearson[1]),
                       float(spearman[1]), float(oov_ratio), len(gold_used), n_oov, table)


__all__ = [
    "RESTRICT_VOCAB",
    "STANDARD_SETS",
    "AnalogyResult",
    "AnalogySection",
    "AnalogySet",
    "PairSet",
    "PairsResult",
    "SectionScore",
    "WordPair",
    "evaluate_analogies",
    "evaluate_pairs",
    "parse_analogies",
    "parse_pairs",
    "read_analogies",
    "read_pairs",
    "resolve_benchmark",
    "standard_sets",
]
