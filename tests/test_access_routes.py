"""Every route to a file outside the data roots is closed, through the API and through the app (issue 14.1).

The attacker is a user who knows the password: each test hides a secret outside the roots and tries to read
it as a vocabulary, a shard, a hub "id" or a symlinked tokenizer file. The secret must never become tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from streamlit.testing.v1 import AppTest

import core
from core.access import confined
from core.errors import EmbedscopeError, FormatError, PathNotAllowed

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
#: Readable as a plain vocabulary and as a WordPiece vocab.txt (which needs the special tokens).
SECRET = ["[SEP]", "[CLS]", "[UNK]", "SECRET-ALPHA"]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data root with a 4-row model, an upload folder, a runs folder, and secrets outside all of them."""
    root, uploads, outside = tmp_path / "data", tmp_path / "uploads", tmp_path / "outside"
    for d in (root, uploads, outside, tmp_path / "runs"):
        d.mkdir()
    monkeypatch.setenv("EMBEDSCOPE_DATA_ROOTS", str(root))
    monkeypatch.setenv("EMBEDSCOPE_UPLOADS", str(uploads))
    monkeypatch.setenv("EMBEDSCOPE_RUNS", str(tmp_path / "runs"))
    (outside / "secret.json").write_text(json.dumps({t: i for i, t in enumerate(SECRET)}), encoding="utf-8")
    (outside / "secret.txt").write_text("\n".join(SECRET) + "\n", encoding="utf-8")
    weights = {"embed_tokens.weight": np.arange(8, dtype=np.float32).reshape(4, 2)}
    save_file(weights, str(outside / "shard.safetensors"))
    model = root / "model"
    model.mkdir()
    save_file(weights, str(model / "model.safetensors"))
    (model / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2, "d": 3}), encoding="utf-8")
    upload = uploads / "0123abcd"
    upload.mkdir()
    np.save(upload / "emb.npy", weights["embed_tokens.weight"])
    return {"root": root, "uploads": uploads, "outside": outside, "model": model, "upload": upload}


def _index(folder: Path, shard: str) -> None:
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embed_tokens.weight": shard}}), encoding="utf-8")
    (folder / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "c": 2, "d": 3}), encoding="utf-8")


# --- through the API: core.load under the confinement the dashboard sets ---------------------------------------

def test_api_vocabulary_outside_the_roots_with_an_upload(world: dict[str, Path]) -> None:
    with confined([world["uploads"]]), pytest.raises(PathNotAllowed, match="EMBEDSCOPE_DATA_ROOTS"):
        core.load(world["upload"] / "emb.npy", vocab=world["outside"] / "secret.txt")


@pytest.mark.parametrize("shard", ["ABS", "../../outside/shard.safetensors", "..", "sub/../shard.safetensors"])
def test_index_shard_names_must_be_plain_file_names(world: dict[str, Path], shard: str) -> None:
    name = str(world["outside"] / "shard.safetensors") if shard == "ABS" else shard
    _index(world["upload"], name)
    with pytest.raises(FormatError, match="plain file names"):  # confined or not: an index names files beside it
        core.load(world["upload"] / "model.safetensors.index.json")
    with confined([world["uploads"]]), pytest.raises(FormatError, match="plain file names"):
        core.load(world["upload"])


def test_api_a_local_path_given_where_a_hub_id_goes(world: dict[str, Path]) -> None:
    with confined(), pytest.raises(PathNotAllowed):
        core.load(str(world["outside"] / "shard.safetensors"), vocab="rows")


@pytest.mark.parametrize("name", ["vocab.txt", "vocab.json", "tokenizer.json", "model.safetensors", "config.json"])
def test_api_a_symlink_beside_the_weights_that_leaves_the_roots(world: dict[str, Path], name: str) -> None:
    target = world["outside"] / {"model.safetensors": "shard.safetensors", "vocab.json": "secret.json"}.get(
        name, "secret.txt")
    for old in ("vocab.json", name):
        (world["model"] / old).unlink(missing_ok=True)
    (world["model"] / name).symlink_to(target)
    with confined(), pytest.raises(PathNotAllowed, match=name):
        core.load(world["model"])


def test_a_symlink_that_stays_inside_is_fine(world: dict[str, Path]) -> None:
    (world["root"] / "vocab-copy.json").write_text(json.dumps({"w": 0, "x": 1, "y": 2, "z": 3}), encoding="utf-8")
    (world["model"] / "vocab.json").unlink()
    (world["model"] / "vocab.json").symlink_to(world["root"] / "vocab-copy.json")
    with confined():
        assert core.load(world["model"]).index_to_key == ("w", "x", "y", "z")


def test_without_confinement_the_cli_still_opens_anything(world: dict[str, Path]) -> None:
    m = core.load(world["upload"] / "emb.npy", vocab=world["outside"] / "secret.txt")
    assert list(m.index_to_key) == SECRET


# --- through the app ------------------------------------------------------------------------------------------

def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error] + [e.value for e in at.sidebar.error]


def _assert_no_secret(at: AppTest) -> None:
    shown = repr([el.value for el in at.dataframe]) + repr([el.value for el in at.table])
    shown += repr([m.value for m in at.markdown]) + repr([c.value for c in at.code])
    assert "SECRET" not in shown, shown


def _open_as_current(at: AppTest, kind: str, value: Path, vocab: Path | None = None) -> None:
    from dashboard.state import SourceSpec

    spec = SourceSpec(kind, str(value), vocab=str(vocab) if vocab else None, label="attack")
    at.session_state["embedscope.current"] = spec
    at.session_state["embedscope.opened"] = [SourceSpec("demo", label="Demo: all-MiniLM-L6-v2"), spec]


def test_app_upload_with_a_vocabulary_outside_the_roots(world: dict[str, Path]) -> None:
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("views/lookup.py").run()
    _open_as_current(at, "upload", world["upload"] / "emb.npy", world["outside"] / "secret.txt")
    at.run()
    assert not at.exception
    assert any("outside the folders" in e and "EMBEDSCOPE_DATA_ROOTS" in e for e in _errors(at)), _errors(at)
    _assert_no_secret(at)


def test_app_uploaded_index_naming_a_shard_outside(world: dict[str, Path]) -> None:
    _index(world["upload"], "../../outside/shard.safetensors")
    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("views/lookup.py").run()
    _open_as_current(at, "upload", world["upload"])
    at.run()
    assert not at.exception
    assert any("plain file names" in e for e in _errors(at)), _errors(at)


def test_app_hub_box_given_a_local_path(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDSCOPE_NO_HUB", raising=False)
    (world["outside"] / "model").mkdir()
    save_file({"embed_tokens.weight": np.ones((4, 2), dtype=np.float32)},
              str(world["outside"] / "model" / "model.safetensors"))
    (world["outside"] / "model" / "vocab.txt").write_text("\n".join(SECRET) + "\n", encoding="utf-8")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.radio(key="open.kind").set_value("Hugging Face hub").run()
    at.text_input(key="open.hub").input(str(world["outside"] / "model")).run()
    at.button(key="open.go").click().run()
    assert not at.exception
    assert any("outside the folders" in e for e in _errors(at)), _errors(at)
    assert all(s.kind != "hub" for s in at.session_state["embedscope.opened"])


def test_app_folder_in_a_root_with_a_symlinked_vocabulary(world: dict[str, Path]) -> None:
    (world["model"] / "vocab.json").unlink()
    (world["model"] / "vocab.txt").symlink_to(world["outside"] / "secret.txt")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.text_input(key="open.path").input(str(world["model"])).run()
    at.button(key="open.go").click().run()
    assert not at.exception
    assert any("outside the folders" in e and "vocab.txt" in e for e in _errors(at)), _errors(at)
    at.switch_page("views/lookup.py").run()
    _assert_no_secret(at)


def test_every_refusal_is_one_of_ours(world: dict[str, Path]) -> None:
    assert issubclass(PathNotAllowed, EmbedscopeError)
