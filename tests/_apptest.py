"""What a page test reads back from Streamlit's AppTest beyond its typed elements: the data a chart draws."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest


def chart_data(at: AppTest, column: str) -> pd.DataFrame:
    """The data of the first Altair chart on the page whose table has ``column`` (Streamlit sends it as Arrow)."""
    import pyarrow as pa

    for el in at.get("vega_lite_chart"):
        for d in el.proto.datasets:
            frame = pa.ipc.open_stream(d.data.data).read_pandas()
            if column in frame.columns:
                return frame
    raise AssertionError(f"no chart on the page has a {column!r} column")
