"""Hostile and malformed input: every byte string ends in a matrix or one of our errors."""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
from core.access import safe_upload_name, save_uploads
from core.errors import EmbedscopeError, ParameterError, UnsafeFileError

if TYPE_CHECKING:
    from tests.conftest import Canary

_FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                 derandomize=True)

_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "NaN", "", "x", "0x10", "1_0"]))
_word = st.text(min_size=0, max_size=8).map(lambda s: s.replace("\n", ""))
_line = st.builds(lambda w, nums, sep: w + sep + sep.join(nums), _word, st.lists(_number, max_size=5),
                  st.sampled_from([" ", "\t", "  "]))
_text_file = st.builds(lambda header, lines, eol: (header + eol.join(lines)).encode("utf-8", "surrogatepass"),
                       st.sampled_from(["", "3 2\n", "2 4\n", "0 0\n", "1\n", "a b\n"]), st.lists(_line, max_size=8),
                       st.sampled_from(["\n", "\r\n"]))
_bytes = st.one_of(st.binary(max_size=400), _text_file)


def _load_bytes(data: bytes, name: str, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / name
        p.write_bytes(data)
        try:
            m = core.load(p, format=fmt)
        except EmbedscopeError:
            return
        assert m.vectors.ndim == 2 and len(m.index_to_key) == m.vectors.shape[0]


@_FUZZ
@given(_bytes)
def test_fuzz_word2vec_text(data: bytes) -> None:
    _load_bytes(data, "vectors.txt", "word2vec-text")


@_FUZZ
@given(_bytes)
def test_fuzz_glove(data: bytes) -> None:
    _load_bytes(data, "glove.txt", "glove")


@_FUZZ
@given(_bytes, st.binary(max_size=200))
def test_fuzz_projector_tsv(vectors: bytes, metadata: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vectors.tsv").write_bytes(vectors.replace(b" ", b"\t"))
        (Path(tmp) / "metadata.tsv").write_bytes(metadata)
        with contextlib.suppress(EmbedscopeError):
            core.load(Path(tmp))


@_FUZZ
@given(st.binary(max_size=300))
def test_fuzz_word2vec_binary(data: bytes) -> None:
    _load_bytes(b"3 2\n" + data, "vectors.bin", "word2vec-binary")


def test_ten_megabyte_line(tmp_path: Path) -> None:
    p = tmp_path / "long.txt"
    p.write_bytes(b"2 3\nok 1 2 3\n" + b"w" + b" 1" * 5_000_000 + b"\n")
    with pytest.raises(EmbedscopeError, match="line 3"):
        core.load(p)


def test_pickle_payload_in_meta_pth(tmp_path: Path, canary: Canary) -> None:
    folder = tmp_path / "meta"
    folder.mkdir()
    (folder / "consolidated.00.pth").write_bytes(pickle.dumps({"tok_embeddings.weight": canary.payload}))
    with pytest.raises(UnsafeFileError, match="consolidated.00.pth"):
        core.load(folder, vocab="rows")
    assert not canary.path.exists()


@pytest.mark.parametrize("name", ["../../x", "..", ".", "", "a/b", "a\\b", "x\0y"])
def test_upload_names_cannot_traverse(name: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError):
        safe_upload_name(name)
    with pytest.raises(ParameterError):
        save_uploads([(name, b"data")], tmp_path / "uploads")
    assert not (tmp_path / "x").exists()


def test_uploads_land_in_a_new_folder(tmp_path: Path) -> None:
    root = tmp_path / "uploads"
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    body = "\n".join("\t".join(str(v) for v in row) for row in a).encode()
    folder = save_uploads([("vectors.tsv", body), ("metadata.tsv", b"a\nb\nc\n")], root)
    assert folder.parent == root
    assert core.load(folder).index_to_key == ("a", "b", "c")
    assert save_uploads([("vectors.tsv", body), ("metadata.tsv", b"a\nb\nc\n")], root) == folder


def _truncate_main_file(path: Path) -> Path:
    """Cut the largest file of an export to 60 % of its bytes; returns the path to open."""
    target = max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size) if path.is_dir() else path
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * 0.6)])
    return path


@pytest.mark.parametrize("fmt", ["projector", "word2vec", "word2vec-bin", "safetensors", "npy"])
def test_truncated_files_of_every_format(fmt: str, tmp_path: Path, demo: core.EmbeddingMatrix) -> None:
    from core import export

    small = demo.with_vectors(np.asarray(demo.vectors))  # same vocabulary; only 300 rows are written
    out = tmp_path / ("out" if fmt in {"projector", "safetensors", "npy"} else "out.bin")
    export.export(small, out, fmt, rows=np.arange(300))
    with pytest.raises(EmbedscopeError):
        core.load(_truncate_main_file(out))


def test_truncated_pdparams_and_bin(tmp_path: Path) -> None:
    import torch

    (tmp_path / "bin").mkdir()
    torch.save({"model.embed_tokens.weight": torch.ones(50, 8)}, tmp_path / "bin" / "pytorch_model.bin")
    _truncate_main_file(tmp_path / "bin" / "pytorch_model.bin")
    with pytest.raises(EmbedscopeError, match="pytorch_model.bin"):
        core.load(tmp_path / "bin", vocab="rows")
    p = tmp_path / "emb.pdparams"
    p.write_bytes(pickle.dumps({"weight": np.ones((50, 8), dtype=np.float32)}))
    _truncate_main_file(p)
    with pytest.raises(EmbedscopeError, match="emb.pdparams"):
        core.load(p)


# --- issue 14.6: every bad input is one of our errors (exit 2), never a traceback -------------------------------

def _npy_bytes(shape: tuple[int, ...], descr: str, body: bytes) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


_dim = st.one_of(st.integers(0, 5), st.sampled_from([2**31, 2**32 + 1, 2**63 - 1, 2**63, 2**64, 10**7, -1]))


@_FUZZ
@given(st.lists(_dim, max_size=3).map(tuple), st.sampled_from(["<f4", "<f2", ">f8", "<i4", "|O", "<U3", "V8", "<c8"]),
       st.binary(max_size=64))
def test_fuzz_npy_headers(shape: tuple[int, ...], descr: str, body: bytes) -> None:
    _load_bytes(_npy_bytes(shape, descr, body), "m.npy", "npy")


class _Reduce:
    def __init__(self, fn: object, args: tuple[object, ...], state: object = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> tuple[object, ...]:
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _pdparams(shape: tuple[int, ...], dtype: str, data: bytes, dtype_state: object, protocol: int) -> bytes:
    from numpy._core.multiarray import _reconstruct

    dt = _Reduce(np.dtype, (dtype, False, True), dtype_state)
    arr = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dt, False, data))
    return pickle.dumps({"weight": arr}, protocol=protocol)


_DTYPE_STATE = st.one_of(st.just((3, "<", None, None, None, -1, -1, 0)), st.just((3, ">", None, None, None, -1, -1, 0)),
                         st.tuples(st.integers(-1, 4), st.sampled_from("<>|=x"), st.none(), st.none(), st.none(),
                                   st.integers(-2, 2**40), st.integers(-2, 16), st.integers(0, 63)))


@_FUZZ
@given(st.lists(_dim, max_size=3).map(tuple), st.sampled_from(["f4", "f8", "f2", "i8", "O", "U2", "V4", "b1"]),
       st.binary(max_size=64), _DTYPE_STATE, st.sampled_from([2, 4, 5]))
def test_fuzz_pdparams_arrays(shape: tuple[int, ...], dtype: str, data: bytes, state: object, protocol: int) -> None:
    _load_bytes(_pdparams(shape, dtype, data, state, protocol), "m.pdparams", "pdparams")


_GOOD_PDPARAMS = pickle.dumps({"emb": {"weight": np.arange(8, dtype=np.float32).reshape(4, 2)}}, protocol=2)


@_FUZZ
@given(st.lists(st.tuples(st.integers(0, len(_GOOD_PDPARAMS) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzz_pdparams_byte_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_GOOD_PDPARAMS)
    for at, value in flips:
        data[at] = value
    _load_bytes(bytes(data), "m.pdparams", "pdparams")


@_FUZZ
@given(st.dictionaries(st.text(max_size=6), st.fixed_dictionaries({
    "dtype": st.sampled_from(["F32", "BF16", "F16", "I8", "X"]), "shape": st.lists(_dim, max_size=3),
    "data_offsets": st.lists(st.integers(-1, 2**64), min_size=0, max_size=3)}), max_size=3), st.binary(max_size=64))
def test_fuzz_safetensors_headers(header: dict[str, object], body: bytes) -> None:
    import json
    import struct

    raw = json.dumps(header).encode()
    _load_bytes(struct.pack("<Q", len(raw)) + raw + body, "m.safetensors", "huggingface")


def _deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def _folder_with(tmp_path: Path, demo_dir: Path, name: str, text: str) -> Path:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(demo_dir, folder)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json", "model.safetensors.index.json",
                                  "vocab.json"])
def test_deeply_nested_json_is_exit_2_without_a_traceback(name: str, tmp_path: Path, demo_dir: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from core.cli import main

    monkeypatch.setenv("EMBEDSCOPE_LOG", str(tmp_path / "errors.log"))
    folder = _folder_with(tmp_path, demo_dir, name, _deep_json())
    args = ["info", str(folder)] + (["--vocab", str(folder / "vocab.json")] if name == "vocab.json" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nested too deeply" in err, err
    assert len(err.splitlines()) == 1


def test_deeply_nested_safetensors_header(tmp_path: Path) -> None:
    import struct

    raw = _deep_json().encode()
    p = tmp_path / "deep.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(EmbedscopeError, match="deep.safetensors.*nested too deeply"):
        core.load(p, vocab="rows")


def test_nul_byte_in_a_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.access import check_allowed
    from core.cli import main

    for bad in ("model\0.npy", str(tmp_path / "a\0b")):
        with pytest.raises(ParameterError, match="NUL"):
            core.load(bad)
        with pytest.raises(ParameterError, match="NUL"):
            check_allowed(bad, [tmp_path])
    np.save(tmp_path / "m.npy", np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ParameterError, match="NUL"):
        core.load(tmp_path / "m.npy", vocab="v\0.txt")
    assert main(["info", "x\0y"]) == 2
    assert "NUL" in capsys.readouterr().err


def test_compressed_torch_record_is_refused_not_read_as_garbage(tmp_path: Path) -> None:
    import zipfile

    import torch

    torch.save({"model.embed_tokens.weight": torch.arange(12.0).reshape(4, 3)}, tmp_path / "ok.bin")
    packed = tmp_path / "packed" / "pytorch_model.bin"
    packed.parent.mkdir()
    with zipfile.ZipFile(tmp_path / "ok.bin") as zi, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():
            zo.writestr(info.filename, zi.read(info.filename))
    with pytest.raises(EmbedscopeError, match="compressed"):
        core.load(packed.parent, vocab="rows")


def test_terminal_escape_codes_in_tensor_names_are_printed_escaped(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.numpy import save_file

    from core.cli import main

    evil = "\x1b]0;owned\x07\x1b[2J\x9b31m"
    save_file({evil: np.ones((4, 2), dtype=np.float32), "x\x1b[8m": np.ones((4, 2), dtype=np.float32)},
              str(tmp_path / "model.safetensors"))
    assert main(["info", str(tmp_path), "--vocab", "rows"]) == 2
    assert main(["info", str(tmp_path), "--vocab", "rows", "--tensor", evil]) == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream
    assert "\\x1b]0;owned" in captured.err


def test_pca_of_a_matrix_with_nan_rows_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    a = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    a[5] = np.nan
    a[9, 1] = np.inf
    np.save(tmp_path / "nan.npy", a)
    assert main(["project", str(tmp_path / "nan.npy"), "--vocab", "rows", "--method", "pca",
                 "--out", str(tmp_path / "xy.csv")]) == 2
    err = capsys.readouterr().err
    assert "2 of the 40 selected rows hold NaN or infinite values" in err and "row 5" in err


def test_an_unforeseen_error_is_one_line_and_a_log_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from core import cli

    log = tmp_path / "errors.log"
    monkeypatch.setenv("EMBEDSCOPE_LOG", str(log))

    def broken(_args: object) -> int:
        raise ZeroDivisionError("a bug we did not foresee")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda command=None: parser)
    info = parser._subparsers._group_actions[0].choices["info"]  # type: ignore[union-attr]
    info.set_defaults(func=broken)
    assert cli.main(["info", "demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err and str(log) in err and "Traceback" not in err
    assert "Traceback" in log.read_text(encoding="utf-8")
