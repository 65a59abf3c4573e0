"""What the HTML reports share: the status colours, and a chart as an inline image (no script, no network)."""

from __future__ import annotations

import base64
from typing import Any

from core._status import Status

STATUS_COLORS: dict[Status, str] = {"pass": "#2e7d32", "warn": "#ef8f00", "fail": "#c62828", "n/a": "#757575"}


def chart_data_uri(chart: Any) -> str:
    """An Altair chart as a ``data:`` URI: SVG rendered by vl-convert, or PNG when the SVG would be heavy."""
    import altair as alt
    import vl_convert as vlc

    version: str | None = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    if version not in vlc.get_vegalite_versions():
        version = None  # vl-convert's own default
    spec = chart.to_dict()
    svg = vlc.vegalite_to_svg(spec, vl_version=version)
    if len(svg) <= 300_000:
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    # Thousands of scatter marks make a heavy SVG; a PNG of them stays small.
    png = vlc.vegalite_to_png(spec, vl_version=version, scale=2)
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
