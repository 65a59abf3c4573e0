"""The password gate under attack: uploads before the password, upload totals, password guessing (issue 14.5)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from streamlit.testing.v1 import AppTest

from dashboard import auth

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
PASSWORD = "pw-for-the-gate-test"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real `streamlit run` with a password (XSRF off: an attacker can fetch the cookie anyway)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, auth.PASSWORD_ENV: PASSWORD, "EMBEDSCOPE_NO_HUB": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--server.enableXsrfProtection", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)


async def _upload_before_the_password(url: str, body: bytes) -> int:
    import httpx
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async with websockets.connect(url.replace("http", "ws") + "/_stcore/stream") as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        await ws.send(msg.SerializeToString())
        session_id = ""
        while not session_id:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
            if fwd.WhichOneof("type") == "new_session":
                session_id = fwd.new_session.initialize.session_id
        await asyncio.sleep(1.5)  # the script run shows the password form and stops
        async with httpx.AsyncClient() as client:
            r = await client.put(f"{url}/_stcore/upload_file/{session_id}/{uuid.uuid4()}",
                                 files={"file": ("big.bin", body)})
        return r.status_code


def test_a_real_server_refuses_uploads_before_the_password(server: str) -> None:
    status = asyncio.run(_upload_before_the_password(server, b"\0" * 100_000))
    assert status == 403  # Streamlit itself answers 204 and keeps the bytes


def _rec(file_id: str, size: int) -> UploadedFileRec:
    return UploadedFileRec(file_id=file_id, name="f.bin", type="application/octet-stream", data=b"\0" * size)


def test_uploads_are_kept_only_for_sessions_past_the_gate_and_under_the_cap() -> None:
    from starlette.exceptions import HTTPException

    mgr = MemoryUploadedFileManager("/_stcore/upload_file")
    keeper = auth.Gatekeeper()
    auth.guard_uploads(mgr, keeper, cap=lambda: 100)
    auth.guard_uploads(mgr, keeper, cap=lambda: 10**9)  # a second install changes nothing
    with pytest.raises(HTTPException) as refused:
        mgr.add_file("stranger", _rec("a", 10))
    assert refused.value.status_code == 403 and not mgr.file_storage.get("stranger")
    keeper.succeeded("1.2.3.4", "member")
    mgr.add_file("member", _rec("a", 60))
    with pytest.raises(HTTPException) as full:
        mgr.add_file("member", _rec("b", 50))
    assert full.value.status_code == 413
    mgr.add_file("member", _rec("a", 90))  # replacing a file counts its new size only
    assert sum(len(f.data) for f in mgr.file_storage["member"].values()) == 90
    keeper.open_to_all = True  # no password configured: everyone may upload, still under the cap
    mgr.add_file("anyone", _rec("c", 100))


def test_password_guessing_backs_off_and_is_logged(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(auth.PASSWORD_ENV, PASSWORD)
    keeper = auth.gatekeeper()
    now = [1000.0]
    monkeypatch.setattr(keeper, "clock", lambda: now[0])
    keeper.failures.clear()
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    with caplog.at_level(logging.WARNING, logger="embedscope.auth"):
        for _ in range(auth.FREE_FAILURES + 2):
            at.text_input(key="auth.password").input("guess")
            at.button[0].click().run()
    assert any("wrong password" in r.getMessage() for r in caplog.records)
    assert keeper.failures, "the app and the test share one gatekeeper"
    # the right password, given too soon after a run of failures, is not even checked
    at.text_input(key="auth.password").input(PASSWORD)
    at.button[0].click().run()
    assert any("Too many wrong passwords" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.sidebar.selectbox
    waits = [auth.Gatekeeper(failures={"c": (n, 0.0)}, clock=lambda: 0.0).wait_left("c") for n in range(2, 9)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # grows with every failure
    now[0] += 3600
    at.text_input(key="auth.password").input(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key="sidebar.matrix") is not None
    assert not keeper.failures  # a success clears the client's record
