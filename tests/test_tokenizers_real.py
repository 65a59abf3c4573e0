"""A folder whose only tokenizer is a SentencePiece ``tokenizer.model``: mistral-common's released models.

Oracles: transformers' converter, which rebuilds each model as a ``tokenizer.json`` with the ``tokenizers``
library (independent of the ``sentencepiece`` library our tokenizer uses), and ``sentencepiece`` itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import _realfiles
import numpy as np
import pytest

import core
from core.audit import token_categories
from core.errors import FormatError

#: Texts every real-file test looks up: accents, CJK, an emoji past the BMP, repeated spaces.
SAMPLES = ("Hello world", "naïve café", "東京", "😀", "  two  spaces")
MORE = ("The quick brown fox", "𝔘nicode ☃ ok\tx\ny", " lead", "trailing ", "1234567.89", "Привет мир",
        "ÀÉÎÕÜ", "unbelievably")
#: Text that spells a control piece: SentencePiece reads it as characters, a tokenizer.json as the special token.
CONTROL_TEXT = ("[INST] hi", "<s> literal")
VERSIONS = ("v1", "v3", "v7")


def _pair(tmp: Path, version: str) -> tuple[Path, Path]:
    """Two folders with the same seeded matrix: one with only tokenizer.model, one with its converted JSON."""
    model = _realfiles.mistral_sentencepiece(version)
    import sentencepiece as spm

    rows = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    only_model = _realfiles.seeded_model_folder(tmp / "model", rows)
    shutil.copyfile(model, only_model / "tokenizer.model")
    converted = _realfiles.seeded_model_folder(tmp / "json", rows)
    _realfiles.tokenizer_json_from_sentencepiece(model, converted / "tokenizer.json")
    return only_model, converted


@pytest.fixture(scope="module", params=VERSIONS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _pair(tmp_path_factory.mktemp(f"spm-{request.param}"), request.param)


def test_lookup_gives_the_model_tokenizers_ids(pair: tuple[Path, Path]) -> None:
    """Issue 12, defect 4: "world" must map to ``▁world``, as the model's tokenizer gives it."""
    from tokenizers import Tokenizer

    only_model, converted = pair
    oracle = Tokenizer.from_file(str(converted / "tokenizer.json"))
    m = core.load(only_model)
    for text in SAMPLES + MORE:
        enc = oracle.encode(text, add_special_tokens=False)
        pieces = m.lookup(text)
        assert [p.id for p in pieces] == enc.ids, text
        assert [p.token for p in pieces] == enc.tokens, text
    assert [p.token for p in m.lookup("Hello world")][-1] == "▁world"


def test_ids_equal_sentencepiece_and_spans_point_into_the_text(pair: tuple[Path, Path]) -> None:
    import sentencepiece as spm

    only_model, _ = pair
    sp = spm.SentencePieceProcessor(model_file=str(only_model / "tokenizer.model"))
    m = core.load(only_model)
    for text in SAMPLES + MORE + CONTROL_TEXT:
        pieces = m.lookup(text)
        assert [p.id for p in pieces] == sp.encode(text), text
        assert all(0 <= p.start <= p.end <= len(text) for p in pieces), text
        assert not any(p.unknown or p.special for p in pieces), text
    cafe = m.lookup("naïve café")
    assert "".join("naïve café"[p.start:p.end] for p in cafe) == "naïve café"
    with_bos = m.lookup("Hello", special=True)
    assert with_bos[0].token == "<s>" and with_bos[0].special and [p.id for p in with_bos] == sp.encode(
        "Hello", add_bos=True)


def test_scheme_specials_and_decode_match_the_converted_tokenizer(pair: tuple[Path, Path]) -> None:
    from tokenizers import Tokenizer

    only_model, converted = pair
    a, b = core.load(only_model), core.load(converted)
    oracle = Tokenizer.from_file(str(converted / "tokenizer.json"))
    assert a.has_tokenizer and a.tokenizer.scheme == b.tokenizer.scheme == "sentencepiece"
    assert a.tokenizer.special_tokens == b.tokenizer.special_tokens
    assert {"<s>", "</s>", "<unk>"} <= a.tokenizer.special_tokens
    assert a.tokenizer.unk_token == b.tokenizer.unk_token == "<unk>"
    assert a.index_to_key == b.index_to_key and a.unassigned_from is None
    assert a.provenance.vocab_source == "tokenizer.model"
    for text in SAMPLES + MORE[:3]:
        ids = oracle.encode(text, add_special_tokens=False).ids
        assert a.tokenizer.decode(ids) == oracle.decode(ids, skip_special_tokens=False), text
    assert a.tokenizer.decode([1, *oracle.encode("Hi").ids]) == oracle.decode([1, *oracle.encode("Hi").ids],
                                                                               skip_special_tokens=False)


# Each model's audit categories take ~3 s: one model in the default run, all of them in the slow one.
@pytest.mark.parametrize("pair", [pytest.param("v1", marks=pytest.mark.slow), "v3",
                                  pytest.param("v7", marks=pytest.mark.slow)], indirect=True)
def test_audit_reference_tokens_are_the_same_for_both_folders(pair: tuple[Path, Path]) -> None:
    only_model, converted = pair
    a, b = core.load(only_model), core.load(converted)
    assert a.kinds == b.kinds
    cats_a, cats_b = token_categories(a), token_categories(b)
    differ = np.flatnonzero(cats_a != cats_b)
    assert differ.size == 0, [(a.index_to_key[i], cats_a[i], cats_b[i]) for i in differ[:10]]
    assert (cats_a == "ok").sum() > 0.9 * len(a)


def test_matrix_taller_than_the_model_marks_padding_rows(tmp_path: Path) -> None:
    model = _realfiles.mistral_sentencepiece("v1")
    folder = _realfiles.seeded_model_folder(tmp_path, 32064)
    shutil.copyfile(model, folder / "tokenizer.model")
    m = core.load(folder)
    assert m.unassigned_from == 32000 and m.index_to_key[32000] == "[row 32000]"
    assert [p.token for p in m.lookup("world")] == ["▁world"]


@pytest.mark.parametrize("damage", ["truncated", "not-protobuf", "empty"])
def test_damaged_tokenizer_model_is_a_format_error(tmp_path: Path, damage: str) -> None:
    data = _realfiles.mistral_sentencepiece("v3").read_bytes()
    folder = _realfiles.seeded_model_folder(tmp_path, 32768)
    bad = {"truncated": data[: len(data) // 2], "not-protobuf": b"\xff" * 64, "empty": b""}[damage]
    (folder / "tokenizer.model").write_bytes(bad)
    with pytest.raises(FormatError, match="tokenizer.model"):
        core.load(folder)


def test_text_that_is_not_unicode_is_a_parameter_error(pair: tuple[Path, Path]) -> None:
    """A lone surrogate (undecodable bytes on a command line) used to escape as RuntimeError/TypeError."""
    from core.errors import ParameterError

    for folder in pair:
        m = core.load(folder)
        with pytest.raises(ParameterError, match="character 1"):
            m.lookup("a\udcffb")
