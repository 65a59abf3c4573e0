"""JSON-safe values: what the CLI's ``--json``, the run card and the pages' JSON downloads print.

Standard JSON has no NaN or Infinity, and ``json`` does not know numpy values; this turns both into what it
does know, without importing numpy (the CLI starts without it).
"""

from __future__ import annotations

import math
from typing import Any


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/Inf as None, numpy arrays and scalars (anything with ``tolist``) as Python values,
    tuples as lists and keys as strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return json_safe(tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
