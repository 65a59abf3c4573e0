"""Both images checked with hadolint-style rules, by parsing the Dockerfiles (no Docker here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = ["Dockerfile", "Dockerfile.gpu"]
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _assignments(args: str) -> list[tuple[str, str]]:
    """NAME=value pairs of an ENV or ARG line (also the legacy `ENV NAME value` form)."""
    pairs = re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)', args)
    if pairs:
        return [(name, value.strip('"')) for name, value in pairs]
    name, _, value = args.partition(" ")
    return [(name, value.strip())]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_image_pinned_by_tag(name: str) -> None:
    froms = [args for keyword, args in _instructions(ROOT / name) if keyword == "FROM"]
    assert froms, f"{name} has no FROM"
    for args in froms:
        image = args.split()[0]
        if "@sha256:" in image:
            continue
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} is not pinned by tag (DL3006)"
        assert not image.endswith(":latest"), f"{name}: {image} uses latest (DL3007)"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_as_non_root_with_healthcheck(name: str) -> None:
    instructions = _instructions(ROOT / name)
    users = [args.split(":")[0] for keyword, args in instructions if keyword == "USER"]
    assert users, f"{name} never switches away from root (DL3002)"
    assert users[-1] not in {"root", "0"}, f"{name}: the last USER is root (DL3002)"
    keywords = [keyword for keyword, _ in instructions]
    assert "HEALTHCHECK" in keywords, f"{name} has no HEALTHCHECK"
    assert keywords.index("CMD") > max(i for i, k in enumerate(keywords) if k == "USER")



@pytest.mark.parametrize("name", DOCKERFILES)
def test_serves_through_the_launcher(name: str) -> None:
    """The image starts `python -m dashboard`, which guards uploads before listening (plain `streamlit run` does not)."""
    cmds = [json.loads(args) for keyword, args in _instructions(ROOT / name) if keyword == "CMD"]
    assert len(cmds) == 1, f"{name}: expected one CMD in exec form"
    python, *rest = cmds[0]
    assert Path(python).name == "python" and rest[:2] == ["-m", "dashboard"], f"{name}: CMD {cmds[0]}"
    assert "--server.address=0.0.0.0" in rest and "--server.port=8501" in rest

@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_secrets_in_env_or_arg(name: str) -> None:
    for keyword, args in _instructions(ROOT / name):
        if keyword not in {"ENV", "ARG"}:
            continue
        for var, value in _assignments(args):
            assert not (_SECRET_NAME.search(var) and value), f"{name}: {keyword} {var} carries a secret"


def test_cpu_image_stays_default_and_gpu_keeps_its_torch() -> None:
    cpu = (ROOT / "Dockerfile").read_text()
    gpu = (ROOT / "Dockerfile.gpu").read_text()
    assert "constraints.txt" in cpu and "make install" in cpu
    assert re.search(r"^FROM pytorch/pytorch:[\w.]+-cuda[\w.-]+-runtime\s*$", gpu, re.M)
    assert "keep-torch.txt" in gpu


def test_torch_is_a_range_for_the_package_and_pinned_for_the_set_up() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"torch>=2\.4"', pyproject) and "torch==" not in pyproject
    pins = [ln for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.startswith("torch")]
    assert pins == ["torch==2.13.0"]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # What `make install-dev` would run, in a fresh checkout (no .venv): every pip install is constrained.
    planned = subprocess.run(
        ["make", "-n", "-B", "install-dev", "e2e"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [ln for ln in planned.splitlines() if "pip install" in ln]
    assert len(installs) >= 5, planned
    assert all("-c constraints.txt" in ln for ln in installs), installs
