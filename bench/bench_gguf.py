"""Opening GGUF (issue 15): SmolLM2-135M-Instruct as released, the row of "Hello" in a fresh process, against the
script a user would write with the gguf package (read the file, dequantise every tensor, pick the embedding).
Peak memory is the child's own VmHWM, against the float32 table's size."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench._harness import Result

OURS = """
import sys, core
m = core.load(sys.argv[1])
print(m.get_vector(m.lookup("Hello")[0].id)[:4])
"""

# What a user writes first: every tensor dequantised, then the embedding picked and the id found by hand.
NAIVE = """
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
tensors = {t.name: gguf.dequantize(t.data, t.tensor_type) for t in r.tensors}
tokens = r.fields["tokenizer.ggml.tokens"].contents()
print(tensors["token_embd.weight"][tokens.index("Hello")][:4])
"""

PEAK = """
import sys
exec(sys.argv[2])
from bench._harness import proc_status_kib
print("PEAK", proc_status_kib("VmHWM"))
"""


def _child(code: str, path: Path) -> tuple[float, int]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, str(path), code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    elapsed = time.perf_counter() - t
    peak = int(out.stdout.rsplit("PEAK", 1)[1])
    return elapsed, peak


def run() -> list[Result]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import _realfiles

    path = _realfiles.smollm2_gguf()
    table_mib = 49152 * 576 * 4 / 2**20
    base = _child("import core, gguf, tokenizers", path)[1]  # the interpreter with the libraries both sides load
    ours = min(_child(OURS, path) for _ in range(3))
    naive = min(_child(NAIVE, path) for _ in range(3))
    return [
        Result("gguf", "SmolLM2 GGUF (Q8_0, 49,152×576): open + row of 'Hello', fresh process", ours[0],
               "gguf: dequantise every tensor, pick the table", naive[0], "≥ 5×",
               f"peak RSS {ours[1] / 1024:.0f} MiB, {(ours[1] - base) / 1024:.0f} MiB over the interpreter and its "
               f"libraries ({(ours[1] - base) / 1024 / table_mib:.2f}× the {table_mib:.0f} MiB fp32 table; target "
               f"< 2×); baseline {naive[1] / 1024:.0f} MiB"),
    ]
