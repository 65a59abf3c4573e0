"""The first two pages under AppTest: the demo opens, "Hello" shows id 7592 with 384 values."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def test_overview_opens_on_the_demo(app: AppTest) -> None:
    assert app.title[0].value == "Overview"
    assert "30,522 tokens × 384 dimensions" in app.caption[0].value
    assert not app.error
    facts = app.table[0].value
    assert "embeddings.word_embeddings.weight" in facts.iloc[:, 0].tolist()


def test_lookup_hello(app: AppTest) -> None:
    app.switch_page("views/lookup.py").run()
    assert not app.exception, app.exception
    table = app.dataframe[0].value
    assert table["id"].tolist() == [7592]
    assert "384 values each" in app.subheader[0].value
    labels = [b.proto.label for b in app.get("download_button")]
    assert {"Vectors as CSV", "Vectors as JSON"} <= set(labels)


def test_lookup_unknown_word(app: AppTest) -> None:
    app.switch_page("views/lookup.py").run()
    app.text_input(key="lookup.text").input("🦜").run()
    assert not app.exception
    assert any("not in the vocabulary" in e.value for e in app.error)
    app.text_input(key="lookup.text").input("Hello 🦜").run()  # the known piece is shown, the unknown one named
    assert app.dataframe[0].value["id"].tolist() == [7592]
    assert [e.value for e in app.error] == ["'🦜' is not in the vocabulary (the tokenizer maps it to [UNK])"]


def test_open_a_bad_path_keeps_the_app_running(app: AppTest, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(tmp_path))
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00\x01")
    app.text_input(key="open.path").input(str(bad)).run()
    app.button(key="open.go").click().run()
    assert not app.exception
    errors = [e.value for e in app.sidebar.error] + [e.value for e in app.error]
    assert any("broken.safetensors: truncated safetensors file" in e for e in errors), errors
    assert app.title[0].value == "Overview"
