"""Numbers people read: two different thresholds never print the same, and metric cards stay short."""

from __future__ import annotations

import re

import numpy as np
import pytest

import core
from core.audit import Policy, audit
from core.numfmt import distinct, short, span


@pytest.mark.parametrize("values", [
    [1.0312, 1.0349], [1.0301, 1.0302, 1.0303], [0.999999, 1.000001], [262144.4, 262144.6], [1e-7, 1.1e-7],
    [-0.5, -0.50004], [3.0, 3.0, 3.0001],
])
def test_distinct_values_never_print_the_same(values: list[float]) -> None:
    out = distinct(values)
    for i in range(len(values)):
        for j in range(i):
            assert (out[i] == out[j]) == (values[i] == values[j]), out
    # each string reads back close to its value (Python's float() is the oracle)
    for v, text in zip(values, out, strict=True):
        assert float(text.replace(",", "")) == pytest.approx(v, rel=5e-3)


def test_distinct_uses_few_digits_when_they_suffice() -> None:
    assert distinct([0.2451, 1.2867]) == ["0.245", "1.29"]
    assert distinct([1.0312, 1.0349]) == ["1.031", "1.035"]


@pytest.mark.parametrize(("value", "text"), [
    (262144.0, "262,144"), (0.0, "0"), (1.0, "1"), (0.05717187, "0.0572"), (2.0349966e-06, "2.03e-06"),
    (999.95, "1000"), (12345.6, "12,346"), (-0.65475, "-0.655"), (float("nan"), "NaN"),
])
def test_short(value: float, text: str) -> None:
    assert short(value) == text


def test_metric_values_fit_a_quarter_width_card() -> None:
    from dashboard.ui import metric_range, metric_value

    # The values the Health and Compare pages put on cards: at most 9 characters, a range at most 15.
    for v in (0.057171876, 0.0018717447916, 0.4423141858, 2.0349966e-06, 0.81227061, 262144.0, -0.6547560):
        assert len(metric_value(v)) <= 9, metric_value(v)
    assert metric_value(None) == "—"
    assert metric_range(0.2450987, 1.2867) == "0.245 – 1.29" and len(metric_range(0.2450987, 1.2867)) <= 15
    lo, hi = metric_range(1.0312, 1.0349).split(" – ")
    assert lo != hi
    assert span(2.0, 2.0) == "2 – 2"


def test_norm_outlier_message_tells_the_two_cut_offs_apart() -> None:
    # Norms within 0.1% of 1.03 put both cut-offs near 1.03, which three significant digits print the same.
    rng = np.random.default_rng(0)
    v = rng.standard_normal((4000, 16))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    norms = 1.03 * np.exp(rng.normal(0.0, 1e-4, 4000))
    norms[:30], norms[30:50] = 1.02, 1.04                       # a tail on each side
    v *= norms[:, None]
    m = core.EmbeddingMatrix(v.astype(np.float32), [f"w{i}" for i in range(4000)])
    c = audit(m, Policy.from_mapping({"duplicates": {"enabled": False}})).check("norm_outliers")
    found = re.search(r"(\d+) rows below ([\d.]+) and (\d+) above ([\d.]+)", c.reason)
    assert found, c.reason
    low, lo, high, hi = int(found[1]), float(found[2]), int(found[3]), float(found[4])
    assert (low, high) == (30, 20) and lo < hi
    # The cut-offs from numpy: median ± 5 MAD (scaled) of the log norm.
    logn = np.log(np.linalg.norm(v.astype(np.float32).astype(np.float64), axis=1))
    med = np.median(logn)
    mad = np.median(np.abs(logn - med)) * 1.4826
    assert lo == pytest.approx(np.exp(med - 5 * mad), abs=5e-4) and hi == pytest.approx(np.exp(med + 5 * mad), abs=5e-4)
