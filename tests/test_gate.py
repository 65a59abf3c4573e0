"""The password gate under attack: uploads before the password (from the server's first connection on), upload
totals, password guessing (issue 14.5)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
from streamlit.runtime.uploaded_file_manager import UploadedFileRec
from streamlit.testing.v1 import AppTest

from dashboard import auth, serve

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
PASSWORD = "pw-for-the-gate-test"
XSRF_OFF = ["--server.enableXsrfProtection", "false"]  # an attacker can fetch the XSRF cookie anyway
REFUSED = "Enter the password before uploading"  # the gate's answer; Streamlit's own refusals say otherwise


@contextmanager
def _serve(tmp: Path, password: str | None) -> Iterator[tuple[str, Path]]:
    """The launcher (`python -m dashboard`) on a free port, with or without a password: its URL and its log."""
    env = {**os.environ, "EMBEDSCOPE_NO_HUB": "1"}
    env.pop(auth.PASSWORD_ENV, None)
    if password is not None:
        env[auth.PASSWORD_ENV] = password
    port = serve.free_port()
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = serve.start(port, env, options=XSRF_OFF, output=out)
    try:
        url = f"http://127.0.0.1:{port}"
        serve.wait_healthy(url, proc=proc)
        yield url, log
    finally:
        serve.stop(proc)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real server with a password, no page run in it yet."""
    with _serve(tmp_path, PASSWORD) as running:
        yield running


async def _upload(url: str, body: bytes, after_s: float) -> tuple[int, str]:
    """Open a session as a browser does, then PUT ``body`` to it ``after_s`` seconds after the server names it."""
    import httpx
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async with websockets.connect(url.replace("http", "ws") + "/_stcore/stream") as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        await ws.send(msg.SerializeToString())
        session_id = ""
        while not session_id:  # Streamlit names the session as the script run starts, before app.py has run
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), 60))
            if fwd.WhichOneof("type") == "new_session":
                session_id = fwd.new_session.initialize.session_id
        await asyncio.sleep(after_s)
        async with httpx.AsyncClient() as client:
            r = await client.put(f"{url}/_stcore/upload_file/{session_id}/{uuid.uuid4()}",
                                 files={"file": ("big.bin", body)})
        return r.status_code, r.text


def test_a_real_server_refuses_uploads_before_the_password(server: tuple[str, Path]) -> None:
    status, detail = asyncio.run(_upload(server[0], b"\0" * 100_000, after_s=1.5))  # the form is showing
    assert (status, detail) == (403, REFUSED)  # Streamlit itself answers 204 and keeps the bytes


def test_uploads_are_guarded_from_the_first_connection(server: tuple[str, Path]) -> None:
    """No script has run in the server when the first session uploads, the moment the server names it: under
    plain `streamlit run` this upload lands before app.py reaches the gate, and Streamlit keeps it (204)."""
    url, log = server
    status, detail = asyncio.run(_upload(url, b"\0" * 100_000, after_s=0.0))
    assert (status, detail) == (403, REFUSED)
    line = "refused an upload of 100000 bytes from a session that has not passed the password gate"
    deadline = time.monotonic() + 10
    while line not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert line in log.read_text(errors="replace")  # refused by the gate's wrapper, before anything is stored


def test_without_a_password_the_first_upload_is_kept(tmp_path: Path) -> None:
    """The same request to a server without a password: the guard is there but lets it through."""
    with _serve(tmp_path, None) as (url, _):
        status, _detail = asyncio.run(_upload(url, b"\0" * 100_000, after_s=0.0))
    assert status == 204


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
