"""Chart builders: pure functions from data to an altair chart. No Streamlit, no I/O.

Tests read ``chart.to_dict()``; pages pass the chart to ``st.altair_chart``. Builders keep their data
under altair's 5,000-row limit by binning or downsampling here, never in the page. One module per area;
everything is re-exported here, so callers write ``from core import charts; charts.norm_histogram(...)``.
"""

from core.charts._audit import *  # noqa: F403
from core.charts._basic import (
    MAX_ROWS,
    dimension_profile,
    norm_histogram,
    similarity_heatmap,
    top_dims_bar,
    vector_lines,
)
from core.charts._compare import *  # noqa: F403
from core.charts._finetune import *  # noqa: F403
from core.charts._projection import *  # noqa: F403
from core.charts._similarity import *  # noqa: F403

__all__ = [
    "MAX_ROWS",
    "dimension_profile",
    "norm_histogram",
    "similarity_heatmap",
    "top_dims_bar",
    "vector_lines",
]
