"""Start the dashboard server in a child process and wait until it answers: one way for tests and benchmarks.

The child runs the launcher (``python -m dashboard``), so it serves exactly what an operator's server does,
upload guard included, headless and bound to ``address``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from core.errors import ServerNotReady

ROOT = Path(__file__).resolve().parents[1]
HEALTH = "/_stcore/health"


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def start(port: int, env: Mapping[str, str] | None = None, *, address: str = "127.0.0.1",
          options: Sequence[str] = (), output: IO[bytes] | int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """``python -m dashboard`` on ``address:port`` in a child process, from the source checkout.

    Args:
        env: the child's whole environment (default: this process's).
        options: more ``streamlit run`` options, e.g. ``["--server.enableXsrfProtection", "false"]``.
        output: where the child's stdout and stderr go (an open file, ``subprocess.PIPE``, ...); discarded by
            default. A pipe nobody reads stops the server once it fills: prefer a file for long runs.
    """
    cmd = [sys.executable, "-m", "dashboard", "--server.port", str(port), "--server.address", address,
           "--server.headless", "true", *options]
    return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ if env is None else env), stdout=output,
                            stderr=subprocess.STDOUT)


def wait_healthy(url: str, timeout: float = 90.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once ``url``'s health endpoint answers 200.

    Raises:
        ServerNotReady: after ``timeout`` seconds, or as soon as ``proc`` (the server's process) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + HEALTH, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise ServerNotReady(f"the dashboard server for {url} exited with code {proc.returncode} before "
                                 f"{HEALTH} answered; see its output")
        if time.monotonic() > deadline:
            raise ServerNotReady(f"the dashboard server at {url} did not answer on {HEALTH} within {timeout:.0f} s; "
                                 "see its output, or give it longer on a busy machine")
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Ask the server to stop, and kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
