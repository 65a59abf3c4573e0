"""A real dashboard server (`python -m dashboard`) and Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._harness import proc_status_kib
from core.errors import ServerNotReady
from dashboard import serve

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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = serve.free_port()
    import core

    roots = os.pathsep.join([str(ROOT), str(EXPORT_DIR), str(core.demo_path())])
    env = {**os.environ, "EMBEDSCOPE_RUNS": str(tmp_path_factory.mktemp("runs")), "HF_HUB_OFFLINE": "1",
           "EMBEDSCOPE_NO_HUB": "1", "EMBEDSCOPE_DATA_ROOTS": roots}
    env.pop("EMBEDSCOPE_PASSWORD", None)
    # A file, not a pipe: nobody reads the server's output during the run, and a full pipe would stop it.
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as out:
        proc = serve.start(port, env, output=out)
    url = f"http://127.0.0.1:{port}"
    SERVER_PID["pid"] = proc.pid
    try:
        serve.wait_healthy(url, proc=proc)
    except ServerNotReady as err:
        serve.stop(proc)
        raise ServerNotReady(f"{err}:\n{log.read_text(errors='replace')}") from err
    yield url
    serve.stop(proc)


@pytest.fixture(scope="session")
def server_pid(server: str) -> int:
    """The pid of the server process behind ``server``."""
    return SERVER_PID["pid"]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()
