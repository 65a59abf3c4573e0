"""An optional password gate for shared servers: nothing else renders, and no upload is kept, until it is passed.

The password comes from ``EMBEDSCOPE_PASSWORD`` or ``st.secrets["password"]``; without either the gate is
off (``make run`` on a laptop). The comparison takes constant time. Wrong passwords are logged and each
client (by address) waits longer after every failure past the first few. Streamlit takes uploads over
HTTP outside any script run, so the upload manager itself is wrapped: files for a session that has not
passed the gate are refused, and a session may hold at most ``EMBEDSCOPE_MAX_UPLOAD_BYTES`` in all. The
launcher (``python -m dashboard``) wraps it before the server listens; under plain ``streamlit run`` the first
script run does, which leaves uploads that arrive before that run reaches the gate unguarded.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

PASSWORD_ENV = "EMBEDSCOPE_PASSWORD"
UPLOAD_CAP_ENV = "EMBEDSCOPE_MAX_UPLOAD_BYTES"
DEFAULT_UPLOAD_CAP = 1 << 30
#: Wrong passwords a client may give without waiting (typos); after that the wait doubles, up to the cap.
FREE_FAILURES = 3
MAX_WAIT_S = 600.0
_OK = "auth.ok"
_LOG = logging.getLogger("embedscope.auth")


@dataclass
class Gatekeeper:
    """Process-wide: which sessions passed the gate, and each client's recent failures."""

    open_to_all: bool = False
    passed: set[str] = field(default_factory=set)
    failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Callable[[], float] = time.monotonic

    def wait_left(self, client: str) -> float:
        """Seconds before ``client`` may try again (0 when it may now)."""
        with self.lock:
            count, last = self.failures.get(client, (0, 0.0))
        if count < FREE_FAILURES:
            return 0.0
        wait = min(MAX_WAIT_S, 2.0 ** (count - FREE_FAILURES))
        return max(0.0, last + wait - self.clock())

    def failed(self, client: str) -> int:
        with self.lock:
            now = self.clock()
            if len(self.failures) > 10_000:  # many addresses (IPv6): forget the ones whose wait is long over
                self.failures = {c: v for c, v in self.failures.items() if now - v[1] < MAX_WAIT_S}
            count = self.failures.get(client, (0, 0.0))[0] + 1
            self.failures[client] = (count, now)
        _LOG.warning("wrong password from %s (%d in a row)", client, count)
        return count

    def succeeded(self, client: str, session_id: str | None) -> None:
        with self.lock:
            self.failures.pop(client, None)
            if session_id:
                self.passed.add(session_id)

    def may_upload(self, session_id: str) -> bool:
        with self.lock:
            return self.open_to_all or session_id in self.passed


@st.cache_resource(show_spinner=False)
def gatekeeper() -> Gatekeeper:
    """The one gatekeeper of this server process."""
    return Gatekeeper()


def upload_cap() -> int:
    """Bytes one session may hold in uploads (``EMBEDSCOPE_MAX_UPLOAD_BYTES``, default 1 GiB)."""
    try:
        return max(0, int(os.environ.get(UPLOAD_CAP_ENV, "") or DEFAULT_UPLOAD_CAP))
    except ValueError:
        return DEFAULT_UPLOAD_CAP


class UploadRefused(Exception):
    """An upload the gate does not take (turned into an HTTP error where the web framework allows)."""


def _refuse(status: int, detail: str) -> Exception:
    try:
        from starlette.exceptions import HTTPException
    except ImportError:  # pragma: no cover - another web server underneath: refuse all the same
        return UploadRefused(detail)
    return HTTPException(status_code=status, detail=detail)


def guard_uploads(manager: object, keeper: Gatekeeper, cap: Callable[[], int] = upload_cap) -> None:
    """Wrap ``manager.add_file`` (once) so that it keeps nothing for sessions outside the gate, or past the cap."""
    if getattr(manager, "_embedscope_guarded", False):
        return
    original = manager.add_file  # type: ignore[attr-defined]

    def add_file(session_id: str, file: object) -> None:
        size = len(getattr(file, "data", b""))
        if not keeper.may_upload(session_id):
            _LOG.warning("refused an upload of %d bytes from a session that has not passed the password gate",
                         size)
            raise _refuse(403, "Enter the password before uploading")
        storage = getattr(manager, "file_storage", {}).get(session_id, {})
        file_id = getattr(file, "file_id", None)
        held = sum(len(f.data) for fid, f in storage.items() if fid != file_id)
        if held + size > cap():
            _LOG.warning("refused an upload of %d bytes: the session holds %d of %d allowed", size, held, cap())
            raise _refuse(413, f"This session may hold at most {cap()} bytes of uploads ({UPLOAD_CAP_ENV})")
        original(session_id, file)

    manager.add_file = add_file  # type: ignore[attr-defined]
    manager._embedscope_guarded = True  # type: ignore[attr-defined]


def _install(keeper: Gatekeeper) -> None:
    """Guard the running server's uploads from within a script run: the fallback for plain ``streamlit run``."""
    from streamlit.runtime import Runtime

    if Runtime.exists():
        guard_uploads(Runtime.instance().uploaded_file_mgr, keeper)


def guard_before_listening() -> None:
    """Make every Streamlit server this process starts guard its uploads before it accepts a connection.

    ``streamlit run`` takes uploads for a session as soon as the session exists, before the script has run
    far enough to call :func:`gate`; ``python -m dashboard`` calls this first, so the guard is in place from
    the server's first connection. Installing it twice changes nothing.
    """
    from streamlit.runtime import Runtime
    from streamlit.web.server.server import Server

    original = Server.start
    if getattr(original, "_embedscope_guarded", False):
        return

    async def start(self: Server) -> None:
        keeper = gatekeeper()
        keeper.open_to_all = configured_password() is None
        # The server built its runtime (and its upload manager) in __init__; it listens only in start.
        guard_uploads(Runtime.instance().uploaded_file_mgr, keeper)
        await original(self)

    start._embedscope_guarded = True  # type: ignore[attr-defined]
    Server.start = start  # type: ignore[method-assign]


def configured_password() -> str | None:
    """The password the operator set, or None when the gate is off."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    try:
        value = st.secrets.get("password")
    except Exception:  # no secrets file: Streamlit raises its own not-found error
        return None
    return str(value) if value else None


def _session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _client() -> str:
    try:
        ip = st.context.ip_address
    except Exception:  # outside a server there is no address
        ip = None
    return ip if isinstance(ip, str) and ip else "unknown client"


def gate() -> None:
    """Stop the script here until the right password is given (when one is configured)."""
    keeper = gatekeeper()
    _install(keeper)
    password = configured_password()
    keeper.open_to_all = password is None
    if password is None:
        return
    if st.session_state.get(_OK):
        keeper.succeeded(_client(), _session_id())  # the session id can change on reconnect
        return
    st.title("Embedscope")
    with st.form("auth.form"):
        given = st.text_input("Password", type="password", key="auth.password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        client = _client()
        wait = keeper.wait_left(client)
        if wait > 0:
            st.error(f"Too many wrong passwords; try again in {wait:.0f} s.")
            st.stop()
        if hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8")):
            keeper.succeeded(client, _session_id())
            st.session_state[_OK] = True
            st.session_state.pop("auth.password", None)
            st.rerun()
        count = keeper.failed(client)
        more = keeper.wait_left(client)
        st.error("Wrong password." + (f" Wait {more:.0f} s before the next try." if more > 0 else "")
                 + ("" if count < FREE_FAILURES else " Failed attempts are logged."))
    st.stop()
