"""The command line starts at once: only the chosen command's module is imported, and `info` never loads torch,
pandas or the analysis packages (issue 17). Times are measured in bench/; this checks what makes them."""

from __future__ import annotations

import json
import subprocess
import sys

from core.cli import COMMANDS, build_parser

PROBE = """
import io, json, sys, contextlib
from core.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "pandas", "sklearn", "umap", "numba", "scipy", "core.audit", "core.search",
                           "core.compare", "core.finetune", "core.projection") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy, "numpy": "numpy" in sys.modules}))
"""


def _probe(*args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_table_lists_every_command_its_module_defines() -> None:
    full = build_parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)  # type: ignore[attr-defined]
    for name, (module, _) in COMMANDS.items():
        one = build_parser(name)
        action = next(a for a in one._actions if a.dest == "command")
        assert action.choices[name].description is not None or module  # type: ignore[attr-defined]


def test_info_loads_no_heavy_library() -> None:
    got = _probe("info", "demo", "--json")
    assert got["code"] == 0 and got["heavy"] == []


def test_help_loads_not_even_numpy() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys\nfrom core.cli import build_parser\n"
                           "build_parser('')\nprint('numpy' in sys.modules, 'core.loaders' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["False", "False"], proc.stderr
