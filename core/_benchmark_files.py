"""Benchmark files: analogy questions (``questions-words.txt``) and judged word pairs (WordSim353, SimLex-999).

Parsed as gensim reads them, except that a malformed line raises :class:`~core.errors.FormatError` naming the
file and line instead of being skipped. :mod:`core.evaluate` scores a matrix on them and re-exports every
name here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import FormatError, ParameterError

#: The standard sets gensim ships, offered by name when gensim is installed.
STANDARD_SETS = {"questions-words.txt": "analogies", "wordsim353.tsv": "pairs", "simlex999.txt": "pairs"}


def standard_sets() -> dict[str, Path]:
    """gensim's copies of the standard benchmark files, by name; empty when gensim is not installed.

    The files are found where ``gensim.test.utils.datapath`` looks, without importing gensim (seconds).
    """
    try:
        spec = importlib.util.find_spec("gensim")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    return {name: folder / name for name in STANDARD_SETS if (folder / name).is_file()}


def resolve_benchmark(name_or_path: str | os.PathLike[str]) -> Path:
    """A benchmark file: an existing path, or the name of a standard set (``questions-words.txt``).

    Raises:
        FormatError: neither a file nor a standard set (the message says which names are offered).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    sets = standard_sets()
    if str(name_or_path) in sets:
        return sets[str(name_or_path)]
    if str(name_or_path) in STANDARD_SETS:
        raise FormatError(f"{name_or_path}: the standard sets come with gensim, which is not installed; "
                          "install the dev extra (pip install 'embedscope[dev]') or give a file path")
    offered = ", ".join(sets) or "none (gensim is not installed)"
    raise FormatError(f"{name_or_path}: no such benchmark file; give a path or a standard set: {offered}")


def _read_lines(path: str | os.PathLike[str], encoding: str = "utf8") -> list[str]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except IsADirectoryError as err:
        raise FormatError(f"{p}: is a folder; give a benchmark file") from err
    except FileNotFoundError as err:
        raise FormatError(f"{p}: no such file") from err
    return list(_text(raw, str(p), encoding))


def _text(data: bytes | str | Iterable[str], name: str, encoding: str = "utf8") -> Iterable[str]:
    """Lines of a benchmark given as bytes (a file or an upload), text, or lines."""
    if isinstance(data, bytes):
        raw = data
        try:
            data = raw.decode(encoding)
        except UnicodeDecodeError as err:
            line = raw[:err.start].count(b"\n") + 1
            raise FormatError(f"{name}, line {line}: not valid {encoding} text ({err.reason}); "
                              "save the file as UTF-8") from err
        except LookupError as err:
            raise ParameterError(f"encoding {encoding!r} is not a known text encoding") from err
    return data.splitlines() if isinstance(data, str) else data


@dataclass(frozen=True)
class AnalogySection:
    """One ``: section`` of an analogy file: its questions as (line number, (a, b, c, expected))."""

    name: str
    questions: list[tuple[int, tuple[str, str, str, str]]]


@dataclass(frozen=True)
class AnalogySet:
    """A parsed analogy file (``questions-words.txt`` format)."""

    name: str
    sections: list[AnalogySection]

    @property
    def n_questions(self) -> int:
        return sum(len(s.questions) for s in self.sections)


def parse_analogies(lines: bytes | str | Iterable[str], name: str = "analogies") -> AnalogySet:
    """Parse analogy questions: ``: section`` lines, then lines of four words ``a b c expected``.

    Blank lines are skipped; a section name follows gensim (``line.lstrip(': ').strip()``).

    Raises:
        FormatError: a question before the first section, or a line that is not four words (line named).
    """
    sections: list[AnalogySection] = []
    for no, line in enumerate(_text(lines, name), start=1):
        if line.startswith(": "):
            sections.append(AnalogySection(line.lstrip(": ").strip(), []))
            continue
        words = line.split()
        if not words:
            continue
        if not sections:
            raise FormatError(f"{name}, line {no}: a question comes before the first section header; "
                              "start the file with a line like ': capital-common-countries'")
        if len(words) != 4:
            hint = " (a section header is ': name', with a space)" if line.startswith(":") else ""
            raise FormatError(f"{name}, line {no}: expected 4 words 'a b c expected', got {len(words)}{hint}")
        sections[-1].questions.append((no, (words[0], words[1], words[2], words[3])))
    if not sections:
        raise FormatError(f"{name}: no section header found; is this an analogy file (': section' lines and "
                          "4-word questions)?")
    return AnalogySet(name, sections)


def read_analogies(path: str | os.PathLike[str], encoding: str = "utf8", name: str | None = None) -> AnalogySet:
    """Read an analogy file (see :func:`parse_analogies`); ``name`` (default: the path) labels results."""
    return parse_analogies(_read_lines(path, encoding), name=name or str(path))


@dataclass(frozen=True)
class WordPair:
    """One judged pair: line number, the two words, the human score."""

    line: int
    a: str
    b: str
    score: float


@dataclass(frozen=True)
class PairSet:
    """A parsed word-pair file (WordSim353 / SimLex-999 format: ``word1<TAB>word2<TAB>score``)."""

    name: str
    pairs: list[WordPair]


def parse_pairs(lines: bytes | str | Iterable[str], name: str = "pairs", delimiter: str | None = "\t") -> PairSet:
    """Parse word pairs; lines starting with ``#`` and blank lines are skipped, as gensim does.

    Args:
        delimiter: the field separator (gensim's default is a tab); None splits on any whitespace.

    Raises:
        FormatError: a line without exactly three fields or whose score is not a number (line named).
    """
    if delimiter == "":
        raise ParameterError("delimiter must not be empty; use '\\t', ',' or None for whitespace")
    shown = "whitespace" if delimiter is None else repr(delimiter)
    pairs: list[WordPair] = []
    for no, raw in enumerate(_text(lines, name), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(delimiter)
        if len(fields) != 3:
            raise FormatError(f"{name}, line {no}: expected 3 fields 'word1 word2 score' separated by {shown}, "
                              f"got {len(fields)}")
        try:
            score = float(fields[2])
        except ValueError:
            raise FormatError(f"{name}, line {no}: the score {fields[2].strip()!r} is not a number") from None
        if not np.isfinite(score):
            raise FormatError(f"{name}, line {no}: the score {fields[2].strip()!r} is not a finite number")
        pairs.append(WordPair(no, fields[0], fields[1], score))
    if not pairs:
        raise FormatError(f"{name}: no word pairs found; lines must be 'word1{{sep}}word2{{sep}}score' with "
                          f"sep = {shown}")
    return PairSet(name, pairs)


def read_pairs(path: str | os.PathLike[str], delimiter: str | None = "\t", encoding: str = "utf8",
               name: str | None = None) -> PairSet:
    """Read a word-pair file (see :func:`parse_pairs`); ``name`` (default: the path) labels results."""
    return parse_pairs(_read_lines(path, encoding), name=name or str(path), delimiter=delimiter)


__all__ = ["STANDARD_SETS", "AnalogySection", "AnalogySet", "PairSet", "WordPair", "parse_analogies",
           "parse_pairs", "read_analogies", "read_pairs", "resolve_benchmark", "standard_sets"]
