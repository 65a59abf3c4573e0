"""Projections of an embedding matrix to 2-D or 3-D: which points, which method, how to colour them.

Every projection is two honest steps: a :class:`Selection` (which rows, and how they were chosen, so a
caption can say so) and a method (PCA, t-SNE, UMAP or custom semantic axes) run on exactly those rows.

    >>> import core
    >>> from core.projection import ProjectionConfig, SelectionConfig, project, select
    >>> m = core.load("demo")
    >>> sel = select(m, SelectionConfig(sampling="stratified", sample=2000, seed=0))
    >>> p = project(m, sel, ProjectionConfig(method="pca", dims=2))
    >>> p.coords.shape
    (2000, 2)
    >>> p.caption                                    # doctest: +ELLIPSIS
    'PCA (2-D) of a sample of 2,000 of the 30,522 rows, stratified by token kind ...'

Configs are plain frozen dataclasses, validated up front (:meth:`ProjectionConfig.validate`); every error
names the field and the rule. t-SNE (openTSNE) and UMAP (umap-learn) first reduce to 50 dimensions with
PCA, as their authors recommend.

The rooms: ``_selection`` (which rows), ``_config`` (the config and the result), ``_methods`` (PCA, t-SNE,
UMAP, axes), ``_colour`` (colour, search, density), ``_store`` (finished projections on disk and the jobs
that compute them once per server).
"""

from core.projection._colour import (
    FREQUENCY_BUCKETS,
    Colouring,
    Neighborhood,
    Neighbourhood,
    colour,
    colour_options,
    density,
    frequency_buckets,
    highlight_column,
    points_in_box,
    search,
)
from core.projection._config import METHOD_NAMES, METHODS, METRICS, Method, Metric, Projection, ProjectionConfig
from core.projection._methods import available_memory, check_memory, memory_needed, project
from core.projection._selection import SAMPLINGS, Sampling, Selection, SelectionConfig, select
from core.projection._store import CACHE_ENV, Job, ProjectionJobs, ProjectionStore, cache_root

#: Above this many points a 2-D view of every point is drawn with WebGL (plotly's ``scattergl``) instead of
#: one SVG mark per point; the binned density stays an option at any size.
BROWSER_MAX_POINTS = 50_000

__all__ = [
    "BROWSER_MAX_POINTS",
    "CACHE_ENV",
    "FREQUENCY_BUCKETS",
    "METHODS",
    "METHOD_NAMES",
    "METRICS",
    "SAMPLINGS",
    "Colouring",
    "Job",
    "Method",
    "Metric",
    "Neighborhood",
    "Neighbourhood",
    "Projection",
    "ProjectionConfig",
    "ProjectionJobs",
    "ProjectionStore",
    "Sampling",
    "Selection",
    "SelectionConfig",
    "available_memory",
    "cache_root",
    "check_memory",
    "colour",
    "colour_options",
    "density",
    "frequency_buckets",
    "highlight_column",
    "memory_needed",
    "points_in_box",
    "project",
    "search",
    "select",
]
