"""How to project (:class:`ProjectionConfig`, validated up front) and what comes out (:class:`Projection`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from core.errors import ParameterError
from core.matrix import EmbeddingMatrix
from core.projection._selection import Selection

if TYPE_CHECKING:
    import pandas as pd

    from core.projection._colour import Colouring

#: Projection methods: PCA, t-SNE, UMAP, and custom semantic axes.
Method = Literal["pca", "tsne", "umap", "axes"]
METHODS: tuple[Method, ...] = get_args(Method)
#: Distances t-SNE and UMAP accept here (each is supported by both libraries' fast paths).
Metric = Literal["cosine", "euclidean", "manhattan"]
METRICS: tuple[Metric, ...] = get_args(Metric)
#: Method names as captions and axis titles show them.
METHOD_NAMES: dict[str, str] = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP", "axes": "Custom axes"}


@dataclass(frozen=True)
class ProjectionConfig:
    """How to project the selected rows.

    Attributes:
        method: "pca", "tsne" (openTSNE), "umap" (umap-learn) or "axes" (custom semantic axes).
        dims: 2 or 3.
        seed: random seed (PCA's randomized solver, t-SNE, UMAP).
        perplexity: t-SNE's effective number of neighbours; needs 3 × perplexity ≤ points − 1.
        n_neighbors: UMAP's neighbourhood size (2 .. points − 1).
        min_dist: UMAP's minimum distance between embedded points (0 .. 1).
        metric: distance for t-SNE and UMAP: cosine, euclidean or manhattan.
        pre_pca: dimensions PCA keeps before t-SNE and UMAP (skipped when the matrix is narrower).
        axis_x: (A, B): x is the cosine of each row with the direction B − A ("axes").
        axis_y: (C, D) for y the same way; None puts the first principal component of what x leaves on y.
        n_jobs: threads for t-SNE (-1: every core). UMAP with a seed runs on one thread to stay reproducible.
    """

    method: Method = "pca"
    dims: int = 2
    seed: int = 0
    perplexity: float = 30.0
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: Metric = "cosine"
    pre_pca: int = 50
    axis_x: tuple[str, str] | None = None
    axis_y: tuple[str, str] | None = None
    n_jobs: int = -1

    def validate(self, points: int, dim: int) -> None:
        """Check the config against ``points`` selected rows of ``dim`` dimensions.

        Raises:
            ParameterError: naming the field and the rule.
        """
        if self.method not in METHODS:
            raise ParameterError(f"method={self.method!r}: must be one of {', '.join(METHODS)}")
        if self.dims not in (2, 3):
            raise ParameterError(f"dims={self.dims}: must be 2 or 3")
        if points < 3:
            raise ParameterError(f"sample: {points} point(s) selected; a projection needs at least 3")
        if self.method == "pca" and dim < self.dims:
            raise ParameterError(f"dims={self.dims}: the matrix has only {dim} dimensions")
        if self.method in ("tsne", "umap"):
            if self.metric not in METRICS:
                raise ParameterError(f"metric={self.metric!r}: must be one of {', '.join(METRICS)}")
            if self.pre_pca < self.dims:
                raise ParameterError(f"pre_pca={self.pre_pca}: must be at least dims ({self.dims})")
        if self.method == "tsne":
            most = (points - 1) / 3
            if not self.perplexity > 0:
                raise ParameterError(f"perplexity={self.perplexity}: must be greater than 0")
            if self.perplexity > most:
                raise ParameterError(
                    f"perplexity={self.perplexity:g}: too large for {points:,} points; t-SNE needs 3 × perplexity "
                    f"≤ points − 1, so at most {most:.1f} here. Lower the perplexity or select more points")
        if self.method == "umap":
            if isinstance(self.n_neighbors, bool) or not isinstance(self.n_neighbors, (int, np.integer)):
                raise ParameterError(f"n_neighbors={self.n_neighbors!r}: must be a whole number")
            if self.n_neighbors < 2:
                raise ParameterError(f"n_neighbors={self.n_neighbors}: must be at least 2")
            if self.n_neighbors >= points:
                raise ParameterError(f"n_neighbors={self.n_neighbors}: must be smaller than the number of points "
                                     f"({points:,}); lower it or select more points")
            if not 0.0 <= self.min_dist <= 1.0:
                raise ParameterError(f"min_dist={self.min_dist}: must be between 0 and 1 (UMAP's spread)")
        if self.method == "axes":
            if self.axis_x is None:
                raise ParameterError("axis_x: custom axes need two words for x, from A to B")
            for name, pair in (("axis_x", self.axis_x), ("axis_y", self.axis_y)):
                if pair is None:
                    continue
                if len(pair) != 2 or not all(isinstance(w, str) and w.strip() for w in pair):
                    raise ParameterError(f"{name}={pair!r}: needs two words, from and to")
                if pair[0].strip() == pair[1].strip():
                    raise ParameterError(f"{name}: {pair[0]!r} → {pair[1]!r} is no direction; choose two "
                                         "different words")
            if self.dims == 3 and dim < 3:
                raise ParameterError(f"dims=3: the matrix has only {dim} dimensions")


@dataclass(frozen=True, eq=False)
class Projection:
    """Coordinates of the selected rows, with what is needed to caption and colour them.

    Attributes:
        coords: (points × dims) float32, read-only; row i belongs to ``selection.indices[i]``.
        selection: which rows, and how they were chosen.
        config: how they were projected.
        axis_titles: one title per output dimension.
        explained_variance: PCA only: the share of variance of the first (up to 10) components.
        pre_pca_variance: t-SNE/UMAP: the share of variance kept by the PCA run first (None if skipped).
        pre_pca_dims: t-SNE/UMAP: the dimensions that PCA kept (None if skipped).
        seconds: wall time of the projection.
        notes: what the user should know (threads, fallbacks).
    """

    coords: np.ndarray
    selection: Selection
    config: ProjectionConfig
    axis_titles: tuple[str, ...]
    explained_variance: np.ndarray | None = None
    pre_pca_variance: float | None = None
    pre_pca_dims: int | None = None
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def dims(self) -> int:
        return int(self.coords.shape[1])

    @property
    def caption(self) -> str:
        """What is shown, how many points and how they were chosen, in one paragraph."""
        c = self.config
        head = f"{METHOD_NAMES[c.method]} ({self.dims}-D) of {self.selection.description}."
        extra = []
        if self.explained_variance is not None:
            shown = float(np.sum(self.explained_variance[: self.dims]))
            extra.append(f"The {self.dims} components shown explain {shown:.1%} of the variance.")
        if c.method in ("tsne", "umap"):
            params = (f"perplexity {c.perplexity:g}" if c.method == "tsne"
                      else f"n_neighbors {c.n_neighbors}, min_dist {c.min_dist:g}")
            pre = (f"PCA to {self.pre_pca_dims} dimensions first (keeping "
                   f"{self.pre_pca_variance:.0%} of the variance), then " if self.pre_pca_variance is not None
                   else "")
            extra.append(f"{pre}{METHOD_NAMES[c.method]} with {params}, {c.metric} distance, seed {c.seed}.")
        if c.method == "axes":
            extra.append("Axes: " + "; ".join(f"{'xyz'[i]} = {t}" for i, t in enumerate(self.axis_titles)) + ".")
        return " ".join([head, *extra])

    def frame(self, m: EmbeddingMatrix, colouring: Colouring | None = None,
              metadata: bool = True) -> pd.DataFrame:
        """One row per point: token, id, kind, x, y[, z], the colour column, and any extra metadata."""
        import pandas as pd

        idx = self.selection.indices
        kinds = m.kinds
        df = pd.DataFrame({"token": [m.index_to_key[i] for i in idx], "id": idx,
                           "kind": [kinds[i] for i in idx]})
        for j, name in enumerate("xyz"[: self.dims]):
            df[name] = self.coords[:, j]
        if colouring is not None:
            df["colour"] = list(colouring.values)
        extra = _extra_columns(m)
        if metadata and extra:
            meta = m.metadata.iloc[idx]
            for col in extra:
                if col not in df.columns:
                    df[col] = meta[col].to_numpy()
        return df


def _extra_columns(m: EmbeddingMatrix) -> list[str]:
    """The file's own metadata columns, as named in ``m.metadata`` (after id, token, kind)."""
    if not m.metadata_columns:
        return []
    return [c for c in m.metadata.columns if c not in ("id", "token", "kind")]

