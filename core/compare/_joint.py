"""A and B projected together, with arrows from each followed token's place in A to its place in B."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.compare._common import _check_int
from core.compare._result import Comparison
from core.errors import ParameterError, check_choice
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn

if TYPE_CHECKING:
    import pandas as pd

    from core.projection import Projection


@dataclass(frozen=True, eq=False)
class JointProjection:
    """A and B projected together: one fit on both spaces stacked.

    Attributes:
        frame: one row per point: token, side ("A" or "B"), x, y, drift, jaccard, selected (True for the
            tokens asked for, which get arrows).
        projection: the underlying :class:`core.projection.Projection` (rows: A's points, then B's).
        caption: what is shown, in words.
    """

    frame: pd.DataFrame
    projection: Projection
    caption: str

    @property
    def axis_titles(self) -> tuple[str, ...]:
        return self.projection.axis_titles

    def arrows(self) -> pd.DataFrame:
        """One row per selected token: token, x, y (in A), x2, y2 (in B), drift."""
        f = self.frame
        a = f[(f["side"] == "A") & f["selected"]].set_index("token")
        b = f[(f["side"] == "B") & f["selected"]].set_index("token")
        out = a[["x", "y", "drift", "jaccard"]].join(b[["x", "y"]].rename(columns={"x": "x2", "y": "y2"}))
        return out.reset_index()


def joint_projection(c: Comparison, a: EmbeddingMatrix, b: EmbeddingMatrix, tokens: Sequence[str] = (), *,
                     sample: int = 1000, top_moved: int = 10, method: str = "pca", seed: int = 0,
                     n_neighbors: int = 15, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> JointProjection:
    """Project A (aligned when the comparison was) and B with one PCA or UMAP fitted on both together.

    Args:
        tokens: tokens to follow with arrows (compared tokens; unknown ones raise).
        sample: how many other compared tokens to add for context (a seeded random sample).
        top_moved: also follow the most moved tokens (0 for none).
        method: "pca" or "umap" (through :func:`core.projection.project`).

    Raises:
        ParameterError: different dimensions (no shared space), a bad method or sample.
        TokenNotFound: a token that was not compared.
    """
    from core import projection as pj

    if c.dim_a != c.dim_b:
        raise ParameterError(f"joint projection: A has {c.dim_a} dimensions and B {c.dim_b}; only spaces of the "
                             "same dimension can be projected together")
    how: pj.Method = check_choice("method", method, ("pca", "umap"), "the joint projection is 'pca' or 'umap'")
    sample = _check_int("sample", sample, 0)
    follow = [c.position(t.strip()) for t in tokens if t.strip()]
    follow += [int(i) for i in c.order("drift")[:max(0, top_moved)]]
    follow = list(dict.fromkeys(follow))
    rest = np.setdiff1d(np.arange(c.compared), np.asarray(follow, dtype=np.int64))
    rng = np.random.default_rng(seed)
    extra = np.sort(rng.choice(rest, size=min(sample, rest.size), replace=False)) if rest.size else rest
    pos = np.concatenate([np.asarray(follow, dtype=np.int64), extra.astype(np.int64)])
    if pos.size < 2:
        raise ParameterError("sample: the joint projection needs at least 2 tokens; raise sample or name tokens")
    va = np.asarray(a.vectors[c.rows_a[pos]], dtype=np.float64)
    if c.rotation is not None:
        va = va @ c.rotation
    vb = np.asarray(b.vectors[c.rows_b[pos]], dtype=np.float32)
    names = [c.tokens[i] for i in pos.tolist()]
    stacked = EmbeddingMatrix(np.vstack([va.astype(np.float32), vb]),
                              [f"A\u241f{t}" for t in names] + [f"B\u241f{t}" for t in names])
    sel = pj.select(stacked, pj.SelectionConfig(sampling="first"))
    cfg = pj.ProjectionConfig(method=how, dims=2, seed=seed, n_neighbors=min(n_neighbors, len(stacked) - 1))
    proj = pj.project(stacked, sel, cfg, progress=progress, cancel=cancel)
    import pandas as pd

    n = pos.size
    chosen = np.zeros(n, dtype=bool)
    chosen[:len(follow)] = True
    drift = c.drift[pos] if c.drift is not None else np.full(n, np.nan)
    frame = pd.DataFrame({"token": names * 2, "side": ["A"] * n + ["B"] * n,
                          "x": proj.coords[:, 0], "y": proj.coords[:, 1],
                          "drift": np.concatenate([drift, drift]),
                          "jaccard": np.concatenate([c.jaccard[pos], c.jaccard[pos]]),
                          "selected": np.concatenate([chosen, chosen])})
    where = "A rotated onto B by Procrustes" if c.aligned else "A and B in their own shared coordinates"
    caption = (f"{pj.METHOD_NAMES[method]} fitted once on {2 * n:,} points: {n:,} compared tokens in A and the "
               f"same in B ({where}); {len(follow):,} followed with arrows (the tokens asked for and the "
               f"{min(top_moved, c.compared)} most moved), the rest a random sample (seed {seed}).")
    if proj.explained_variance is not None:
        caption += f" The 2 components explain {float(proj.explained_variance[:2].sum()):.1%} of the variance."
    return JointProjection(frame, proj, caption)


