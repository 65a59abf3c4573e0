"""Page-test helpers around Streamlit's AppTest: open a matrix as a user does, and read back a chart's data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def page_on(path: str | os.PathLike[str], page: str, timeout: float = 180) -> AppTest:
    """A fresh app session with ``path`` opened from the sidebar (typed into "File or folder", then Open),
    showing ``page`` (e.g. "health")."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.text_input(key="open.path").input(str(path)).run()
    at.button(key="open.go").click().run()
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    at.switch_page(f"views/{page}.py").run()
    return at


def chart_data(at: AppTest, column: str) -> pd.DataFrame:
    """The data of the first Altair chart on the page whose table has ``column`` (Streamlit sends it as Arrow)."""
    import pyarrow as pa

    for el in at.get("vega_lite_chart"):
        for d in el.proto.datasets:
            frame = pa.ipc.open_stream(d.data.data).read_pandas()
            if column in frame.columns:
                return frame
    raise AssertionError(f"no chart on the page has a {column!r} column")
