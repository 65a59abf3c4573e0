"""Chart builders for the similarity pages: neighbour scores, benchmark results, heatmaps as PNG.

The annotated heatmap itself is :func:`core.charts.similarity_heatmap` (in ``_basic``); pass it the
labels and matrix of a :class:`core.search.SimilarityTable` (already in clustered order when asked).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from core.charts._basic import MAX_ROWS

__all__ = ["accuracy_bars", "chart_png", "neighbor_bars", "pairs_scatter"]


def neighbor_bars(tokens: Sequence[str], scores: Sequence[float], metric: str = "cosine",
                  title: str | None = None) -> alt.Chart:
    """Horizontal bars of neighbour scores, best at the top (for euclidean, the shortest distance).

    Args:
        tokens: the neighbours, best first (duplicates are kept apart by their rank).
        scores: their scores.
        metric: "cosine", "dot", "euclidean" or "3cosmul"; names the axis.
    """
    if len(tokens) != len(scores):
        raise ValueError(f"{len(tokens)} tokens for {len(scores)} scores; they must match")
    n = min(len(tokens), MAX_ROWS)
    df = pd.DataFrame({"rank": np.arange(1, n + 1), "token": list(tokens)[:n],
                       "score": np.asarray(scores, dtype=float)[:n]})
    df["label"] = [f"{r}. {t}" for r, t in zip(df["rank"], df["token"], strict=True)]
    axis = {"cosine": "cosine similarity", "dot": "dot product", "euclidean": "euclidean distance",
            "3cosmul": "3CosMul score"}.get(metric, metric)
    return (
        alt.Chart(df, title=title or f"Nearest by {axis}")
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=None, title=None),
            x=alt.X("score:Q", title=axis),
            color=alt.condition("datum.score >= 0", alt.value("#4c78a8"), alt.value("#e45756")),
            tooltip=["rank:Q", "token:N", alt.Tooltip("score:Q", format=".4f")],
        )
    )


def pairs_scatter(human: Sequence[float], model: Sequence[float], word1: Sequence[str], word2: Sequence[str],
                  title: str = "Human vs model similarity") -> alt.Chart:
    """Scatter of human judgements (x) against model cosine (y), one point per word pair.

    Pairs with a NaN model score (out of vocabulary) are left out; above ``MAX_ROWS`` pairs an even
    sample is drawn.
    """
    df = pd.DataFrame({"human": np.asarray(human, dtype=float), "model": np.asarray(model, dtype=float),
                       "word1": list(word1), "word2": list(word2)})
    df = df[np.isfinite(df["model"]) & np.isfinite(df["human"])]
    if len(df) > MAX_ROWS:
        df = df.iloc[np.linspace(0, len(df) - 1, MAX_ROWS).astype(int)]
    return (
        alt.Chart(df, title=title)
        .mark_circle(size=40, opacity=0.6)
        .encode(
            x=alt.X("human:Q", title="human score", scale=alt.Scale(zero=False)),
            y=alt.Y("model:Q", title="model cosine", scale=alt.Scale(zero=False)),
            tooltip=["word1:N", "word2:N", alt.Tooltip("human:Q", format=".2f"),
                     alt.Tooltip("model:Q", format=".3f")],
        )
    )


def accuracy_bars(sections: Sequence[str], correct: Sequence[int], total: Sequence[int],
                  title: str = "Analogy accuracy per section") -> alt.Chart:
    """Bars of accuracy per section (sections with no evaluated question show as 0 with total 0)."""
    c = np.asarray(correct, dtype=float)
    t = np.asarray(total, dtype=float)
    acc = np.divide(c, t, out=np.zeros_like(c), where=t > 0)
    df = pd.DataFrame({"section": list(sections), "accuracy": acc, "correct": c.astype(int),
                       "total": t.astype(int)})
    return (
        alt.Chart(df, title=title)
        .mark_bar()
        .encode(
            y=alt.Y("section:N", sort=None, title=None),
            x=alt.X("accuracy:Q", title="accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            tooltip=["section:N", alt.Tooltip("accuracy:Q", format=".1%"), "correct:Q", "total:Q"],
        )
    )


def chart_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """The chart rendered as PNG bytes (through vl-convert, no browser)."""
    import vl_convert as vlc

    return bytes(vlc.vegalite_to_png(chart.to_json(), scale=scale))
