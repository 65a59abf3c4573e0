"""What is drawn on top of the coordinates: colour categories, a searched label and its neighbours, a binned
density for views too dense to read point by point, and the points inside a brushed box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core._wordfreq import word_lists
from core.errors import ParameterError, TokenNotFound
from core.matrix import EmbeddingMatrix
from core.projection._config import Projection, _extra_columns
from core.projection._selection import Selection, _knn, _resolve_token
from core.tokens import KINDS, strip_marker

if TYPE_CHECKING:
    import pandas as pd

#: Word-frequency buckets (Zipf scale: log10 of occurrences per billion words), most common first.
FREQUENCY_BUCKETS = ("very common (zipf ≥ 6)", "common (5–6)", "moderate (4–5)", "uncommon (3–4)",
                     "rare (< 3)", "not in wordfreq", "not a word")


@dataclass(frozen=True)
class Colouring:
    """One colour category per selected point.

    Attributes:
        by: what was asked ("kind", "frequency", "query", or a metadata column).
        title: the legend title.
        values: one category per point, in selection order.
        order: the categories in legend order.
    """

    by: str
    title: str
    values: tuple[str, ...]
    order: tuple[str, ...]


def colour_options(m: EmbeddingMatrix, selection: Selection | None = None) -> list[str]:
    """What points can be coloured by here: kind, word frequency, query (neighbourhoods), metadata columns."""
    out = ["kind", "frequency"]
    if selection is not None and selection.groups is not None:
        out.append("query")
    out.extend(c for c in _extra_columns(m) if c not in out)
    return out


def _zipf_bucket(z: float) -> str:
    if z <= 0:
        return FREQUENCY_BUCKETS[5]
    if z >= 6:
        return FREQUENCY_BUCKETS[0]
    if z >= 5:
        return FREQUENCY_BUCKETS[1]
    if z >= 4:
        return FREQUENCY_BUCKETS[2]
    if z >= 3:
        return FREQUENCY_BUCKETS[3]
    return FREQUENCY_BUCKETS[4]


def frequency_buckets(m: EmbeddingMatrix, rows: Sequence[int] | np.ndarray, lang: str = "en") -> list[str]:
    """The word-frequency bucket (wordfreq's Zipf scale) of each row; subwords and symbols are "not a word".

    Raises:
        ParameterError: ``lang`` is not a language wordfreq knows.
    """
    with word_lists() as wordfreq:
        if lang not in wordfreq.available_languages():
            raise ParameterError(f"lang={lang!r}: wordfreq has no list for it; choose one of "
                                 f"{', '.join(sorted(wordfreq.available_languages()))}")
        kinds = m.kinds
        scheme = m.tokenizer.scheme
        out = []
        for i in np.asarray(rows).tolist():
            if kinds[i] != "word":
                out.append(FREQUENCY_BUCKETS[6])
                continue
            # wordfreq's own lookup: it casefolds, folds digits and splits the way its lists were counted.
            word = strip_marker(m.index_to_key[i], scheme)[0]
            out.append(_zipf_bucket(wordfreq.zipf_frequency(word, lang)))
    return out


def colour(m: EmbeddingMatrix, selection: Selection, by: str = "kind", lang: str = "en") -> Colouring:
    """Colour categories for the selected points.

    Args:
        by: "kind", "frequency" (word-frequency bucket via wordfreq), "query" (the neighbourhood a point
            came with) or a metadata column.
        lang: wordfreq language for "frequency".

    Raises:
        ParameterError: ``by`` is none of these.
    """
    idx = selection.indices
    if by == "kind":
        kinds = m.kinds
        vals = [kinds[i] for i in idx]
        return Colouring(by, "token kind", tuple(vals), tuple(k for k in KINDS if k in set(vals)))
    if by == "frequency":
        vals = frequency_buckets(m, idx, lang)
        return Colouring(by, f"word frequency ({lang})", tuple(vals),
                         tuple(b for b in FREQUENCY_BUCKETS if b in set(vals)))
    if by == "query":
        if selection.groups is None:
            raise ParameterError("colour='query' needs a neighbourhood selection (sampling='neighbours')")
        return Colouring(by, "neighbour of", selection.groups, tuple(dict.fromkeys(selection.groups)))
    if by in _extra_columns(m):
        col = m.metadata[by].iloc[idx].astype(str).tolist()
        counts: dict[str, int] = {}
        for v in col:
            counts[v] = counts.get(v, 0) + 1
        return Colouring(by, by, tuple(col), tuple(sorted(counts, key=lambda v: -counts[v])))
    raise ParameterError(f"colour={by!r}: choose one of {', '.join(colour_options(m, selection))}")


@dataclass(frozen=True)
class Neighborhood:
    """A searched label and its nearest neighbours among the projected points."""

    query: str
    row: int
    in_selection: bool
    positions: tuple[int, ...]  # into the selection, nearest first (the query itself excluded)
    similarities: tuple[float, ...]


#: The British spelling, kept: it is a public name (identifiers are spelt "neighbor" now).
Neighbourhood = Neighborhood


def search(m: EmbeddingMatrix, projection: Projection, label: str, k: int = 10) -> Neighborhood:
    """Find ``label`` and its ``k`` nearest neighbours (cosine, in the original space) among the points.

    Raises:
        TokenNotFound: the label is not a token of the matrix (with suggestions).
        ParameterError: ``k`` is below 1.
    """
    if k < 1:
        raise ParameterError(f"k={k}: must be at least 1")
    text = label.strip()
    row = _resolve_token(m, text)
    if row is None:
        raise TokenNotFound(text, m.suggest(text))
    idx = projection.selection.indices
    where = np.flatnonzero(idx == row)
    ids, sims = _knn(m, np.asarray(m.vectors[row])[None, :], k + 1, idx)
    where_of = {int(r): p for p, r in enumerate(idx.tolist())}
    keep = [(where_of[int(i)], float(s)) for i, s in zip(ids[0], sims[0], strict=True)
            if int(i) >= 0 and int(i) != row][:k]
    return Neighborhood(text, row, bool(where.size), tuple(p for p, _ in keep), tuple(s for _, s in keep))


def highlight_column(n: int, hood: Neighborhood | None, projection: Projection) -> list[str]:
    """A per-point column: "match" for the searched label, "neighbour" for its neighbours, "" otherwise."""
    out = [""] * n
    if hood is None:
        return out
    for p in hood.positions:
        out[p] = "neighbour"
    if hood.in_selection:
        out[int(np.flatnonzero(projection.selection.indices == hood.row)[0])] = "match"
    return out


def density(coords: np.ndarray, bins: int = 60) -> pd.DataFrame:
    """Counts of points in a ``bins`` × ``bins`` grid over the first two coordinates (empty cells left out).

    Returns:
        columns x, x2, y, y2 (cell edges) and count; at most ``bins²`` rows, so any size stays chartable.
    """
    import pandas as pd

    if bins < 2:
        raise ParameterError(f"bins={bins}: must be at least 2")
    xy = np.asarray(coords[:, :2], dtype=np.float64)
    ok = np.all(np.isfinite(xy), axis=1)
    counts, xe, ye = np.histogram2d(xy[ok, 0], xy[ok, 1], bins=bins)
    ix, iy = np.nonzero(counts)
    return pd.DataFrame({"x": xe[ix], "x2": xe[ix + 1], "y": ye[iy], "y2": ye[iy + 1],
                         "count": counts[ix, iy].astype(np.int64)})


def points_in_box(frame: pd.DataFrame, x: Sequence[float], y: Sequence[float]) -> pd.DataFrame:
    """The rows of a projection frame whose x and y fall in the given ranges (a brushed box)."""
    x0, x1 = sorted(float(v) for v in x)
    y0, y1 = sorted(float(v) for v in y)
    inside = frame["x"].between(x0, x1) & frame["y"].between(y0, y1)
    return frame.loc[inside]

