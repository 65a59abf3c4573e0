"""Numbers for people: few digits, but never so few that two different values print the same.

    >>> distinct([1.0312, 1.0349])            # two thresholds that "%.3g" would both print as 1.03
    ['1.031', '1.035']
    >>> short(262144.0), short(0.000171661), short(0.0)
    ('262,144', '0.000172', '0')
    >>> span(0.2451, 1.2867)                  # a range short enough for a metric card
    '0.245 – 1.29'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Significant digits by default: enough to read, short enough for a metric card.
DIGITS = 3


def short(value: float, digits: int = DIGITS) -> str:
    """``value`` with ``digits`` significant digits: whole numbers with thousands separators, no exponent for
    everyday magnitudes (1e-4 to 1e15), no trailing zeros."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    mag = abs(value)
    if mag >= 10 ** digits and mag < 1e15:
        return f"{round(value):,}"
    text = f"{value:.{digits}g}"
    if "e" in text and mag >= 1e-4:
        text = f"{value:.{digits - 1 - math.floor(math.log10(mag))}f}"
    return text


def distinct(values: Sequence[float], digits: int = DIGITS, max_digits: int = 17) -> list[str]:
    """Each value with the fewest significant digits (at least ``digits``) that print distinct values differently.

    Args:
        values: the numbers shown together (thresholds, the two ends of a range).
        digits: the fewest significant digits to use.
        max_digits: the most (17 tells every two float64 values apart).

    Returns:
        one string per value, in order; equal values print the same.
    """
    for d in range(digits, max_digits + 1):
        out = [short(v, d) for v in values]
        if all(out[i] != out[j] for i in range(len(values)) for j in range(i)
               if values[i] != values[j]):
            return out
    return [repr(float(v)) for v in values]


def span(lo: float, hi: float, digits: int = DIGITS) -> str:
    """``lo – hi`` with :func:`distinct` digits (a range whose two ends never print the same)."""
    a, b = distinct([lo, hi], digits)
    return f"{a} – {b}"


__all__ = ["DIGITS", "distinct", "short", "span"]
