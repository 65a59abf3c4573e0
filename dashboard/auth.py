"""An optional password gate for shared servers: nothing else renders until it is passed.

The password comes from ``EMBEDSCOPE_PASSWORD`` or ``st.secrets["password"]``; without either the gate is
off (``make run`` on a laptop). The comparison takes constant time.
"""

from __future__ import annotations

import hmac
import os

import streamlit as st

PASSWORD_ENV = "EMBEDSCOPE_PASSWORD"
_OK = "auth.ok"


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


def gate() -> None:
    """Stop the script here until the right password is given (when one is configured)."""
    password = configured_password()
    if password is None or st.session_state.get(_OK):
        return
    st.title("Embedscope")
    with st.form("auth.form"):
        given = st.text_input("Password", type="password", key="auth.password")
        submitted = st.form_submit_button("Enter")
    if submitted:
        if hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8")):
            st.session_state[_OK] = True
            st.session_state.pop("auth.password", None)
            st.rerun()
        st.error("Wrong password.")
    st.stop()
