"""A real `streamlit run` on localhost and Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._harness import proc_status_kib

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
# One folder per test process (this module may be imported twice: as conftest and by the test module).
EXPORT_DIR = Path(tempfile.gettempdir()) / f"embedscope-e2e-{os.getpid()}"
EXPORT_DIR.mkdir(exist_ok=True)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


SERVER_PID: dict[str, int] = {}


def rss_mib(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    return proc_status_kib("VmRSS", pid) / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    import core

    roots = os.pathsep.join([str(ROOT), str(EXPORT_DIR), str(core.demo_path())])
    env = {**os.environ, "EMBEDSCOPE_RUNS": str(tmp_path_factory.mktemp("runs")), "HF_HUB_OFFLINE": "1",
           "EMBEDSCOPE_NO_HUB": "1", "EMBEDSCOPE_DATA_ROOTS": roots}
    env.pop("EMBEDSCOPE_PASSWORD", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    SERVER_PID["pid"] = proc.pid
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start: " + (proc.stdout.read().decode() if proc.stdout else ""))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server_pid(server: str) -> int:
    """The pid of the `streamlit run` process behind ``server``."""
    return SERVER_PID["pid"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
