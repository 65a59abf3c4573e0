"""Tiny files that declare huge matrices, and pickles that ask for memory the file does not hold (issue 14.2-3).

Each hostile file is opened in a fresh process whose peak memory is measured: the error must come before
any large allocation, and name the file and what it declared.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import core
from core.budget import BUDGET_ENV, check_matrix, max_matrix_bytes
from core.errors import EmbedscopeError, FormatError, ParameterError, UnsafeFileError

ROOT = Path(__file__).resolve().parents[1]


def _npy_header(path: Path, shape: tuple[int, ...], descr: str = "<f4") -> Path:
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
    return path


class _Reduce:
    """Pickles to ``fn(*args)``: how an attacker names a numpy callable with chosen arguments."""

    def __init__(self, fn: object, args: tuple[object, ...], state: object = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> tuple[object, ...]:
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _bare_ndarray(path: Path, shape: tuple[int, int]) -> Path:
    """numpy.ndarray(shape, 'float32') with no data: 60-odd bytes that ask for rows × d × 4 bytes."""
    path.write_bytes(pickle.dumps({"weight": _Reduce(np.ndarray, (shape, "float32"))}, protocol=2))
    return path


def _reconstruct_without_enough_data(path: Path, shape: tuple[int, int], data: bytes) -> Path:
    from numpy._core.multiarray import _reconstruct

    arr = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, np.dtype("float32"), False, data))
    path.write_bytes(pickle.dumps({"weight": arr}, protocol=4))
    return path


def _safetensors_header(path: Path, shape: list[int]) -> Path:
    raw = json.dumps({"embed_tokens.weight": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def _hostile_files(d: Path) -> dict[str, Path]:
    return {
        "safetensors (10^7, 0)": _safetensors_header(d / "wide0.safetensors", [10**7, 0]),
        "npy (10^7, 0)": _npy_header(d / "wide0.npy", (10**7, 0)),
        "npy (10^8, 0)": _npy_header(d / "wide0b.npy", (10**8, 0)),
        "npy (0, 10^8)": _npy_header(d / "rows0.npy", (0, 10**8)),
        "npy (10^6, 10^3) without data": _npy_header(d / "nodata.npy", (10**6, 10**3)),
        "npy float16 (10^5, 10^5) without data": _npy_header(d / "half.npy", (10**5, 10**5), "<f2"),
        "pdparams ndarray((50000, 10000))": _bare_ndarray(d / "bare.pdparams", (50_000, 10_000)),
        "pdparams ndarray((10^6, 10^4))": _bare_ndarray(d / "bare-big.pdparams", (10**6, 10**4)),
        "pdparams reconstruct, 8 bytes for 10^5 × 10^4": _reconstruct_without_enough_data(
            d / "short.pdparams", (10**5, 10**4), b"\0" * 8),
    }


_MEASURE = r"""
import resource, sys
import core, numpy, torch  # noqa: F401 - the server has these loaded already
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    core.load(sys.argv[1], vocab="rows" if sys.argv[1].endswith((".pdparams", ".safetensors")) else None)
except core.EmbedscopeError as err:
    outcome = type(err).__name__ + ": " + str(err)
except BaseException as err:
    outcome = "UNEXPECTED " + type(err).__name__ + ": " + str(err)[:300]
else:
    outcome = "OPENED"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024)
print(outcome)
"""


def test_no_small_file_grows_memory_by_200_mb_before_its_error(tmp_path: Path) -> None:
    for name, path in _hostile_files(tmp_path).items():
        assert path.stat().st_size < 10 * 1024 * 1024
        run = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True,
                             timeout=300, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        assert run.returncode == 0, (name, run.stderr[-2000:])
        grew_mb, outcome = run.stdout.strip().split("\n", 1)
        assert outcome.startswith(("FormatError", "UnsafeFileError")), (name, outcome)
        assert path.name in outcome, (name, outcome)
        assert int(grew_mb) < 200, (name, grew_mb, outcome)


def test_the_error_names_what_the_file_declared(tmp_path: Path) -> None:
    files = _hostile_files(tmp_path)
    with pytest.raises(FormatError, match=r"10000000 rows × 0 columns"):
        core.load(files["npy (10^7, 0)"])
    with pytest.raises(FormatError, match=r"1000000 × 1000 values .* holds 0 bytes"):
        core.load(files["npy (10^6, 10^3) without data"])
    with pytest.raises(FormatError, match=r"shape \[100000, 10000\] of float32 \(4,000,000,000 bytes\) but the "
                                          r"file holds 8 bytes"):
        core.load(files["pdparams reconstruct, 8 bytes for 10^5 × 10^4"], vocab="rows")


def test_uninitialised_memory_is_never_served_as_a_matrix(tmp_path: Path) -> None:
    """numpy.ndarray((rows, d)) without data would be whatever the heap held (other sessions' data)."""
    path = _bare_ndarray(tmp_path / "heap.pdparams", (64, 8))
    with pytest.raises(UnsafeFileError, match="uninitialised memory") as err:
        core.load(path, vocab="rows")
    assert "heap.pdparams" in str(err.value)


@pytest.mark.parametrize("state", [
    (3, "<", None, ("a",), {"a": ("f4", 0)}, 8, 1, 16),     # a structured dtype dressed as float32
    (3, "<", ("f4", (2**62,)), None, None, -1, -1, 0),      # a subarray of 2^62 items
    (3, "|", None, None, None, -1, -1, 63),                  # flags that say "holds Python objects"
    "not a tuple",
])
def test_crafted_dtype_states_are_refused(tmp_path: Path, state: object) -> None:
    from numpy._core.multiarray import _reconstruct

    dtype = _Reduce(np.dtype, ("f4", False, True), state)
    arr = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"), (1, (2, 2), dtype, False, b"\0" * 16))
    path = tmp_path / "dtype.pdparams"
    path.write_bytes(pickle.dumps({"weight": arr}, protocol=4))
    with pytest.raises(UnsafeFileError, match="dtype"):
        core.load(path, vocab="rows")


@pytest.mark.parametrize("dtype", ["O", "U4", "V8", "M8[s]"])
def test_only_plain_number_dtypes(tmp_path: Path, dtype: str) -> None:
    from numpy._core.multiarray import _reconstruct

    arr = _Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                  (1, (2, 2), _Reduce(np.dtype, (dtype, False, True)), False, b"\0" * 64))
    path = tmp_path / "odd.pdparams"
    path.write_bytes(pickle.dumps({"weight": arr}, protocol=4))
    with pytest.raises(UnsafeFileError):
        core.load(path, vocab="rows")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_numpy_writes_opens(tmp_path: Path, protocol: int) -> None:
    """Protocol 2 spells bytes as _codecs.encode(text, 'latin1'), 5 uses _frombuffer: both are plain data."""
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    path = tmp_path / "ok.pdparams"
    path.write_bytes(pickle.dumps({"emb": {"weight": a, "f64": a.astype(">f8")}}, protocol=protocol))
    m = core.load(path, tensor="emb.weight", vocab="rows")
    np.testing.assert_array_equal(np.asarray(m.vectors), a)
    np.testing.assert_array_equal(np.asarray(core.load(path, tensor="emb.f64", vocab="rows").vectors), a)
    assert m.index_to_key == ("0", "1", "2", "3")


def test_vocab_rows_is_honoured_for_npy_and_pdparams(tmp_path: Path) -> None:
    a = np.ones((3, 2), dtype=np.float32)
    np.save(tmp_path / "m.npy", a)
    (tmp_path / "vocab.txt").write_text("x\ny\nz\n", encoding="utf-8")
    assert core.load(tmp_path / "m.npy").index_to_key == ("x", "y", "z")
    assert core.load(tmp_path / "m.npy", vocab="rows").index_to_key == ("0", "1", "2")


def test_deeply_nested_state_dict_is_a_format_error(tmp_path: Path) -> None:
    depth = 100_000
    body = b"\x80\x02" + b"}X\x01\x00\x00\x00a" * depth + b"}" + b"s" * depth + b"."
    path = tmp_path / "deep.pdparams"
    path.write_bytes(body)
    with pytest.raises(FormatError, match="nested"):
        core.load(path, vocab="rows")


def test_budget_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BUDGET_ENV, "1M")
    assert max_matrix_bytes() == 1 << 20
    np.save(tmp_path / "big.npy", np.ones((1000, 300), dtype=np.float16))  # 600 kB on disk, 1.2 MB as float32
    with pytest.raises(FormatError, match=BUDGET_ENV):
        core.load(tmp_path / "big.npy", vocab="rows")
    monkeypatch.setenv(BUDGET_ENV, "lots")
    with pytest.raises(ParameterError, match=BUDGET_ENV):
        max_matrix_bytes()
    monkeypatch.delenv(BUDGET_ENV)
    assert max_matrix_bytes() > 1 << 20
    with pytest.raises(FormatError, match="2-D"):
        check_matrix("x", (3,))


def test_huge_declared_shapes_are_format_errors(tmp_path: Path) -> None:
    _npy_header(tmp_path / "h.npy", (2**64, 1))
    with pytest.raises(EmbedscopeError, match="h.npy"):
        core.load(tmp_path / "h.npy")
    st = tmp_path / "h.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**64, 2**64], "data_offsets": [0, 0]}}).encode()
    st.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(EmbedscopeError, match="h.safetensors"):
        core.load(st, vocab="rows")
