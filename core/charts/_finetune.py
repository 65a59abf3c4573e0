"""Chart builders for fine-tuning: the loss curve, the embedding's gradient norm, the watch list's cosine
to its start per epoch, and per-epoch validation numbers.

Every builder takes plain sequences or the lists a ``run.json`` holds (``loss_curve``, ``grad_norm``,
``watch.per_epoch``, ``epochs``), so the page draws a live run and a finished one the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from core.charts._basic import MAX_ROWS

__all__ = ["epoch_metrics_chart", "grad_norm_chart", "loss_chart", "watch_cosine_chart"]


def _thin(df: pd.DataFrame, limit: int = MAX_ROWS) -> pd.DataFrame:
    """Every n-th row so that at most ``limit`` remain (the last row is always kept)."""
    if len(df) <= limit:
        return df
    idx = np.unique(np.r_[np.linspace(0, len(df) - 1, limit - 1).astype(int), len(df) - 1])
    return df.iloc[idx]


def loss_chart(steps: Sequence[int], losses: Sequence[float], epochs: Sequence[float] | None = None,
               smooth: int = 0, title: str = "Training loss") -> alt.Chart | alt.LayerChart:
    """The loss per step as a line (coloured by epoch when given), with a moving average when ``smooth`` > 1."""
    df = pd.DataFrame({"step": np.asarray(steps, dtype=np.int64), "loss": np.asarray(losses, dtype=np.float64)})
    if epochs is not None and len(epochs) == len(df):
        df["epoch"] = np.ceil(np.asarray(epochs, dtype=np.float64)).astype(int)
    df = _thin(df[np.isfinite(df["loss"])])
    tips = ["step:Q", alt.Tooltip("loss:Q", format=".4f")] + (["epoch:O"] if "epoch" in df else [])
    base = alt.Chart(df, title=title).encode(x=alt.X("step:Q", title="step"))
    line = base.mark_line(opacity=0.55 if smooth > 1 else 1.0).encode(
        y=alt.Y("loss:Q", title="loss", scale=alt.Scale(zero=False)),
        color=alt.Color("epoch:O", title="epoch") if "epoch" in df else alt.value("#4c78a8"),
        tooltip=tips,
    )
    if smooth <= 1 or len(df) < 3:
        return line
    avg = base.transform_window(mean="mean(loss)", frame=[-smooth + 1, 0], sort=[{"field": "step"}]).mark_line(
        color="#e45756", strokeWidth=2).encode(y="mean:Q", tooltip=["step:Q", alt.Tooltip("mean:Q", format=".4f",
                                                                                         title="moving mean")])
    return alt.LayerChart(layer=[line, avg])


def grad_norm_chart(steps: Sequence[int], values: Sequence[float], max_norm: float | None = None,
                    title: str = "Embedding gradient norm") -> alt.Chart | alt.LayerChart:
    """The embedding's gradient norm per step (log scale), with the clipping threshold as a rule when given."""
    v = np.asarray(values, dtype=np.float64)
    df = _thin(pd.DataFrame({"step": np.asarray(steps, dtype=np.int64), "norm": v})[np.isfinite(v) & (v > 0)])
    line = alt.Chart(df, title=title).mark_line(color="#72b7b2").encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("norm:Q", title="gradient L2 norm", scale=alt.Scale(type="log")),
        tooltip=["step:Q", alt.Tooltip("norm:Q", format=".4g")],
    )
    if not max_norm:
        return line
    rule = alt.Chart(pd.DataFrame({"norm": [float(max_norm)]})).mark_rule(color="#e45756", strokeDash=[4, 3]).encode(
        y="norm:Q", tooltip=[alt.Tooltip("norm:Q", title="clip at")])
    return alt.LayerChart(layer=[line, rule])


def watch_cosine_chart(per_epoch: Sequence[Mapping[str, Any]],
                       title: str = "Watched words: cosine to their starting vector") -> alt.Chart:
    """One line per watched word: epoch (0 = before training) against cosine to its start.

    Args:
        per_epoch: rows with ``epoch``, ``token``, ``cosine_to_start`` and ``neighbours`` (as in ``run.json``).
    """
    rows = [{"epoch": int(r["epoch"]), "token": str(r["token"]), "cosine": float(r["cosine_to_start"]),
             "neighbours": ", ".join(str(n[0]) for n in r.get("neighbours", [])[:5])} for r in per_epoch]
    df = _thin(pd.DataFrame(rows, columns=["epoch", "token", "cosine", "neighbours"]))
    return alt.Chart(df, title=title).mark_line(point=True).encode(
        x=alt.X("epoch:O", title="epoch"),
        y=alt.Y("cosine:Q", title="cosine to start", scale=alt.Scale(zero=False)),
        color=alt.Color("token:N", title="word"),
        tooltip=["token:N", "epoch:O", alt.Tooltip("cosine:Q", format=".4f"), "neighbours:N"],
    )


def epoch_metrics_chart(epochs: Sequence[Mapping[str, Any]], fields: Sequence[str] = ("loss", "val_loss"),
                        title: str = "Per epoch") -> alt.Chart:
    """Lines of per-epoch numbers (e.g. training and validation loss, validation macro-F1), one per field."""
    rows = [{"epoch": int(e["epoch"]), "metric": f, "value": float(e[f])}
            for e in epochs for f in fields if isinstance(e.get(f), (int, float))]
    df = pd.DataFrame(rows, columns=["epoch", "metric", "value"])
    return alt.Chart(df, title=title).mark_line(point=True).encode(
        x=alt.X("epoch:O", title="epoch"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=alt.Color("metric:N", title=None),
        tooltip=["epoch:O", "metric:N", alt.Tooltip("value:Q", format=".4f")],
    )
