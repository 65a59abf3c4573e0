"""Word2vec text/binary and GloVe files written by gensim load to exactly what gensim loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

import core
from core.errors import FormatError


def _same(m: core.EmbeddingMatrix, kv: KeyedVectors) -> None:
    assert list(m.index_to_key) == list(kv.index_to_key)
    assert np.array_equal(m.vectors, kv.vectors)


def test_minilm_exports_match_gensim(minilm_w2v: dict[str, Path]) -> None:
    text = core.load(minilm_w2v["text"])
    assert text.provenance.format == "word2vec-text"
    _same(text, KeyedVectors.load_word2vec_format(str(minilm_w2v["text"])))
    binary = core.load(minilm_w2v["binary"])
    assert binary.provenance.format == "word2vec-binary"
    _same(binary, KeyedVectors.load_word2vec_format(str(minilm_w2v["binary"]), binary=True))
    glove = core.load(minilm_w2v["glove"])
    assert glove.provenance.format == "glove"
    _same(glove, KeyedVectors.load_word2vec_format(str(minilm_w2v["glove"]), no_header=True))


def test_trained_lee_model_round_trip(tmp_path: Path, lee_model) -> None:  # type: ignore[no-untyped-def]
    kv = lee_model.wv
    for binary, name in ((False, "lee.vec"), (True, "lee.bin")):
        path = tmp_path / name
        kv.save_word2vec_format(str(path), binary=binary)
        ours = core.load(path)
        _same(ours, KeyedVectors.load_word2vec_format(str(path), binary=binary))
        limited = core.load(path, limit=100)
        _same(limited, KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=100))
        assert any("limit=100" in n for n in limited.provenance.notes)


def test_trailing_spaces_and_crlf(tmp_path: Path) -> None:
    p = tmp_path / "ft.vec"
    p.write_bytes(b"2 3\r\nhello 1 2 3 \r\nworld -1 0.5 1e-3 \r\n")
    m = core.load(p)
    assert m.index_to_key == ("hello", "world")
    assert np.allclose(m.vectors, [[1, 2, 3], [-1, 0.5, 1e-3]])


def test_duplicates_kept_once_with_warning(tmp_path: Path) -> None:
    p = tmp_path / "dup.txt"
    p.write_text("3 2\na 1 2\nb 3 4\na 5 6\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="repeated words"):
        m = core.load(p)
    assert m.index_to_key == ("a", "b")
    assert m.get_vector("a").tolist() == [1.0, 2.0]
    assert any("repeated" in n for n in m.provenance.notes)


def test_non_utf8_policy(tmp_path: Path) -> None:
    p = tmp_path / "latin1.txt"
    p.write_bytes(b"2 2\ncaf\xe9 1 2\nok 3 4\n")
    m = core.load(p)
    assert m.index_to_key == ("caf\ufffd", "ok")
    assert any("U+FFFD" in n for n in m.provenance.notes)


def test_nan_and_inf_values_are_read(tmp_path: Path) -> None:
    p = tmp_path / "nan.txt"
    p.write_text("2 2\na nan 1\nb inf -inf\n", encoding="utf-8")
    m = core.load(p)
    assert np.isnan(m.vectors[0, 0]) and np.isposinf(m.vectors[1, 0])


def test_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    lines = ["60 3"] + [f"w{i} 1 2 3" for i in range(60)]
    lines[56] = "w55 1 2"  # line 57 of the file
    p = tmp_path / "ragged.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"ragged.txt: line 57: expected a word and 3 values"):
        core.load(p)
    lines[56] = "w55 1 2 x"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"line 57: b?'x' is not a number"):
        core.load(p)


def test_header_that_lies(tmp_path: Path) -> None:
    p = tmp_path / "lies.txt"
    p.write_text("5 2\na 1 2\nb 3 4\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"lies.txt: line 1: header says 5 rows of 2 values but the file has 2"):
        core.load(p)
    b = tmp_path / "lies.bin"
    b.write_bytes(b"3 2\na " + np.ones(2, "<f4").tobytes() + b"\n")
    with pytest.raises(FormatError, match=r"lies.bin: vector 2 of 3 .* truncated"):
        core.load(b)


def test_empty_and_unknown_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="empty.txt: the file is empty"):
        core.load(empty)
    junk = tmp_path / "junk.txt"
    junk.write_text("this is prose, not vectors\n", encoding="utf-8")
    with pytest.raises(FormatError, match="junk.txt: not a format we know"):
        core.load(junk)
