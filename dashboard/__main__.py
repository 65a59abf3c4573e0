"""``python -m dashboard [OPTIONS]``: serve the dashboard, with the upload guard in place before the server listens.

OPTIONS are those of ``streamlit run`` (``--server.port 8501``, ``--server.address 0.0.0.0``, ...; ``--help``
lists them), and ``.streamlit/config.toml`` and ``STREAMLIT_*`` variables apply as they do there. Plain
``streamlit run dashboard/app.py`` still works, but guards uploads only once a first script run reaches the
password gate.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

APP = Path(__file__).resolve().with_name("app.py")


def main(argv: Sequence[str] | None = None) -> None:
    """Install the upload guard, then run Streamlit's own ``streamlit run`` command on the dashboard."""
    from streamlit.web import cli

    from dashboard import auth, memory

    memory.limit_arenas()  # before the server starts its threads
    auth.guard_before_listening()
    options = list(sys.argv[1:] if argv is None else argv)
    cli.main(["run", str(APP), *options], prog_name="streamlit")


if __name__ == "__main__":
    main()
