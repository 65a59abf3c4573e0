"""The query language: a token, a word the tokenizer splits, or a formula such as ``king - man + woman``.

    >>> import core
    >>> from core.search import parse_formula, resolve_query
    >>> parse_formula("king - man + 0.5*woman")
    [(1.0, 'king'), (-1.0, 'man'), (0.5, 'woman')]
    >>> q = resolve_query(core.load("demo"), "unbelievably")
    >>> q.notes()[0].startswith("'unbelievably' is not one token")
    True

Formulas are parsed by hand, never with ``eval``; each term becomes the row of its token, or the mean of
the rows of the pieces the model's tokenizer splits it into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ParameterError
from core.tokens import Piece

if TYPE_CHECKING:
    from core.matrix import EmbeddingMatrix
    from core.search.knn import Metric

_OPERATORS = "+-"


def parse_formula(text: str) -> list[tuple[float, str]]:
    """Split a formula such as ``king - man + woman`` into (weight, term) pairs, without ``eval``.

    Grammar: ``[+|-] term ((+|-) term)*`` where a term is a word, a quoted text (``"new york"``) or a
    number followed by ``*`` and a term (``0.5*king``). ``+``/``-`` always act as operators outside
    quotes, so quote texts that contain them.

    Raises:
        ParameterError: bad syntax, naming the character position.
    """
    if not text or not text.strip():
        raise ParameterError("query is empty; type a token, a word or a formula like 'king - man + woman'")

    def fail(problem: str, pos: int) -> ParameterError:
        return ParameterError(f"query {text!r}: {problem} (at character {pos + 1}); write a formula like "
                              "'king - man + woman'")

    lexed: list[tuple[str, str, int]] = []  # (kind, value, position); kind: op, star, word, quoted
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _OPERATORS:
            lexed.append(("op", ch, i))
            i += 1
        elif ch == "*":
            lexed.append(("star", ch, i))
            i += 1
        elif ch in "()[]{}":
            if ch == "[":  # special tokens such as [CLS] are words
                j = text.find("]", i)
                if j > i + 1 and not any(c.isspace() for c in text[i:j]):
                    lexed.append(("word", text[i:j + 1], i))
                    i = j + 1
                    continue
            raise fail("brackets are not supported; write a flat sum of terms", i)
        elif ch in "\"'":
            j = text.find(ch, i + 1)
            if j < 0:
                raise fail(f"the quote {ch} is not closed", i)
            if not text[i + 1:j].strip():
                raise fail("an empty quoted term", i)
            lexed.append(("quoted", text[i + 1:j], i))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "+-*()":
                j += 1
            lexed.append(("word", text[i:j], i))
            i = j

    terms: list[tuple[float, str]] = []
    sign: float | None = None
    prev_term: tuple[str, int] | None = None
    t = 0
    while t < len(lexed):
        kind, value, pos = lexed[t]
        if kind == "op":
            if sign is not None:
                raise fail(f"two operators in a row ({value!r} after another)", pos)
            if prev_term is None and terms:
                raise fail("an operator is missing a term", pos)
            sign = 1.0 if value == "+" else -1.0
            prev_term = None
            t += 1
            continue
        if kind == "star":
            raise fail("'*' must follow a number, as in 0.5*king", pos)
        if prev_term is not None:
            raise fail(f"expected + or - between {prev_term[0]!r} and {value!r}; quote a text of several "
                       f"words, as in \"{prev_term[0]} {value}\"", pos)
        weight = sign if sign is not None else 1.0
        if kind == "word" and t + 1 < len(lexed) and lexed[t + 1][0] == "star":
            try:
                coef = float(value)
            except ValueError:
                raise fail(f"{value!r} before '*' is not a number", pos) from None
            if not math.isfinite(coef) or coef == 0:
                raise fail("a coefficient must be a non-zero finite number", pos)
            if t + 2 >= len(lexed) or lexed[t + 2][0] not in ("word", "quoted"):
                raise fail("'*' must be followed by a term", lexed[t + 1][2])
            weight *= coef
            t += 2
            kind, value, pos = lexed[t]
        terms.append((weight, value))
        prev_term = (value, pos)
        sign = None
        t += 1
    if sign is not None:
        raise fail("the formula ends with an operator", lexed[-1][2])
    if not terms:
        raise fail("there is no term", 0)
    return terms


def looks_like_formula(text: str) -> bool:
    """True when ``text`` uses formula syntax (+, -, *, or quotes)."""
    return any(c in text for c in "+-*\"'")


@dataclass(frozen=True)
class Term:
    """One term of a query: what was typed, its weight, and the rows it stands for.

    Attributes:
        text: the term as typed.
        weight: +1, -1 or the coefficient of the term.
        pieces: the rows; one when the term is a token, several when the tokenizer splits a word.
        vector: the row, or the mean of the pieces' rows (read-only).
    """

    text: str
    weight: float
    pieces: tuple[Piece, ...]
    vector: np.ndarray = field(repr=False, compare=False)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(p.id for p in self.pieces)

    @property
    def single(self) -> bool:
        """True when the term is one row of the matrix."""
        return len(self.pieces) == 1

    def describe(self) -> str:
        """How the term was read, for the UI ("'unbelievably' is not one token: mean of 3 pieces ...")."""
        if self.single:
            tok = self.pieces[0].token
            return f"{self.text!r} is the token {tok!r}" + ("" if tok == self.text else " (as the tokenizer reads it)")
        names = ", ".join(p.token for p in self.pieces)
        return f"{self.text!r} is not one token: its vector is the mean of {len(self.pieces)} pieces ({names})"


@dataclass(frozen=True)
class Query:
    """A parsed query: one term (a token or a split word) or a formula of several weighted terms."""

    text: str
    terms: tuple[Term, ...]

    @property
    def is_formula(self) -> bool:
        return len(self.terms) > 1 or self.terms[0].weight != 1.0

    @property
    def positive(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight > 0)

    @property
    def negative(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight < 0)

    @property
    def exclude(self) -> tuple[int, ...]:
        """Rows left out of the results: every term that is a single token (as gensim does)."""
        return tuple(dict.fromkeys(t.pieces[0].id for t in self.terms if t.single))

    @property
    def averaged(self) -> tuple[Term, ...]:
        """Terms the tokenizer split into several pieces (their vector is the mean of the pieces)."""
        return tuple(t for t in self.terms if not t.single)

    def notes(self) -> list[str]:
        """What the UI should say about how the query was read."""
        out = [t.describe() for t in self.terms if not t.single or t.pieces[0].token != t.text]
        if self.is_formula:
            out.insert(0, "formula: " + " ".join(
                f"{'−' if t.weight < 0 else '+'} {'' if abs(t.weight) == 1 else f'{abs(t.weight):g}×'}{t.text}"
                for t in self.terms).lstrip("+ "))
        return out

    def vector(self, metric: Metric = "cosine") -> np.ndarray:
        """The query vector: with cosine, gensim's mean of unit vectors; with dot/euclidean, Σ weight·vector."""
        if not self.is_formula:
            return np.asarray(self.terms[0].vector)
        if metric != "cosine":
            out = np.zeros(self.terms[0].vector.shape[0], dtype=np.float64)
            for t in self.terms:
                out += t.weight * np.asarray(t.vector, dtype=np.float64)
            return out.astype(np.float32)
        # gensim: positives then negatives, each unit-normalised, accumulated in float32.
        mean = np.zeros(self.terms[0].vector.shape[0], dtype=np.float32)
        for t in (*self.positive, *self.negative):
            mean += np.float64(t.weight) * unit(t.vector)
        return mean


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` as float32 scaled to unit length (gensim's ``unitvec``); a zero vector stays zero."""
    v = np.asarray(v, dtype=np.float32)
    n = np.float32(np.linalg.norm(v))
    return v / n if n > 0 else v


def resolve_term(m: EmbeddingMatrix, text: str, weight: float = 1.0) -> Term:
    """A term's rows: the token itself when it is in the vocabulary, else the tokenizer's pieces.

    Raises:
        TokenNotFound: the text is not a token and the tokenizer gives an unknown piece (with suggestions).
    """
    idx = m.key_to_index.get(text)
    if idx is not None:
        return Term(text, weight, (Piece(text, idx, 0, len(text)),), m.vectors[idx])
    vec, pieces = m.text_vector(text, strict=True)
    return Term(text, weight, tuple(pieces), vec)


def resolve_query(m: EmbeddingMatrix, text: str) -> Query:
    """Read a query: a token, a word the tokenizer splits, or a formula such as ``king - man + woman``.

    Raises:
        ParameterError: empty query or bad formula syntax.
        TokenNotFound: a term is not in the vocabulary (with suggestions).
    """
    if not isinstance(text, str) or not text.strip():
        raise ParameterError("query is empty; type a token, a word or a formula like 'king - man + woman'")
    raw = text
    text = text.strip()
    if text in m.key_to_index or not looks_like_formula(text):
        return Query(raw, (resolve_term(m, text),))
    terms = [resolve_term(m, t, w) for w, t in parse_formula(text)]
    return Query(raw, tuple(terms))



__all__ = ["Query", "Term", "looks_like_formula", "parse_formula", "resolve_query", "resolve_term", "unit"]
