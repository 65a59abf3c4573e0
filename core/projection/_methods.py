"""The methods: PCA, t-SNE (openTSNE), UMAP (umap-learn) and custom semantic axes, run by :func:`project`."""

from __future__ import annotations

import io
import os
import re
import time
import warnings

import numpy as np

from core.errors import FormatError, ParameterError
from core.matrix import EmbeddingMatrix
from core.progress import CancelFn, ProgressFn, Reporter
from core.projection._config import METHOD_NAMES, Projection, ProjectionConfig
from core.projection._selection import Selection, _readonly


def _is_whole(m: EmbeddingMatrix, selection: Selection) -> bool:
    idx = selection.indices
    return bool(idx.shape[0] == len(m) and (idx.shape[0] == 0 or (idx[0] == 0 and np.all(np.diff(idx) == 1))))


def _rows(m: EmbeddingMatrix, selection: Selection) -> np.ndarray:
    """The selected rows as float32; the matrix itself (no copy) when every row is selected in order."""
    idx = selection.indices
    if _is_whole(m, selection):
        return np.asarray(m.vectors)
    return np.asarray(m.vectors[idx], dtype=np.float32)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where it cannot tell."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def memory_needed(points: int, dim: int, config: ProjectionConfig, *, whole: bool = False) -> int:
    """About how many bytes projecting ``points`` rows of ``dim`` dimensions takes at its peak.

    A rough upper estimate from what each step holds: the float32 copy of the selected rows (none when every
    row is projected in order), PCA's blocks and coordinates, and for t-SNE/UMAP the reduced rows, the
    neighbour graph and the layout.
    """
    c = config
    rows = 0 if whole else points * dim * 4
    block = min(points, max(1, _PCA_BLOCK_VALUES // max(1, dim))) * dim * 4
    pca = 2 * block + points * 10 * 4 + dim * dim * 16
    if c.method in ("pca", "axes"):
        return rows + pca + (points * dim * 4 if c.method == "axes" and c.dims > 2 else 0)
    reduced = points * min(c.pre_pca, dim) * 4 * 2
    # UMAP: pynndescent's heaps, the kNN arrays and the fuzzy graph (COO); t-SNE: affinities and annoy's index.
    per = c.n_neighbors * 64 if c.method == "umap" else int(3 * c.perplexity + 1) * 48
    graph = points * per
    return rows + pca + reduced + graph + points * c.dims * 8


def check_memory(points: int, dim: int, config: ProjectionConfig, *, whole: bool = False,
                 available: int | None = None) -> None:
    """Refuse a projection the machine cannot hold, saying what it needs and how many points would fit.

    Args:
        available: free bytes; by default :func:`available_memory` (no check where the system does not say).

    Raises:
        ParameterError: the estimate of :func:`memory_needed` exceeds what is available.
    """
    free = available_memory() if available is None else available
    if free is None:
        return
    need = memory_needed(points, dim, config, whole=whole)
    if need <= free:
        return
    lo, hi = 0, points  # the most points that fit: memory_needed grows with the points
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if memory_needed(mid, dim, config, whole=whole) <= free:
            lo = mid
        else:
            hi = mid - 1
    fits = lo
    raise ParameterError(
        f"sample: {METHOD_NAMES[config.method]} of {points:,} points × {dim:,} dimensions needs about "
        f"{need / 2**30:.1f} GiB of memory and this machine has {free / 2**30:.1f} GiB free; choose a sample of "
        f"at most about {fits:,} points, or run it on a machine with more memory")


#: Up to this many dimensions PCA eigen-decomposes the covariance (exact, and fast for any row count);
#: wider matrices use scikit-learn's randomized SVD.
_EXACT_PCA_DIMS = 2048
#: Rows per block of the covariance pass: a 64k × 640 float32 block is 160 MiB of temporary memory.
_PCA_BLOCK_VALUES = 1 << 25


def _pca(x: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` principal components of the rows of ``x``: (coordinates float32, variance ratios)."""
    if x.shape[1] > _EXACT_PCA_DIMS or x.shape[0] < 2:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=n, random_state=seed)
        coords = pca.fit_transform(x)
        return np.asarray(coords, dtype=np.float32), np.asarray(pca.explained_variance_ratio_, dtype=np.float64)
    return _pca_covariance(x, n)


def _pca_covariance(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact PCA through the d × d covariance, built block by block.

    scikit-learn's covariance solver forms XᵀX of the uncentred float32 rows and subtracts n·μμᵀ afterwards,
    which loses the variance in float32 rounding when the rows share a large mean (embedding rows often do).
    Here each block is centred first, in float32, and added by BLAS's symmetric rank-k update into a float64
    sum, so a 262,144 × 640 matrix costs three passes (mean, covariance, coordinates), 160 MiB of temporary
    memory and no copy of the table.
    """
    from scipy.linalg import blas

    rows, d = x.shape
    step = max(1, _PCA_BLOCK_VALUES // d)
    total = np.zeros(d, dtype=np.float64)
    for s in range(0, rows, step):
        total += np.asarray(x[s:s + step], dtype=np.float32).sum(axis=0, dtype=np.float64)
    mean = total / rows
    mean32 = mean.astype(np.float32)
    gram = np.zeros((d, d), dtype=np.float64)
    for s in range(0, rows, step):
        block = np.asarray(x[s:s + step], dtype=np.float32) - mean32
        # The transpose of a C-ordered block is a Fortran-ordered d × rows view: syrk takes it without a copy.
        gram += blas.ssyrk(1.0, block.T, trans=0, lower=0)
    gram = np.triu(gram) + np.triu(gram, 1).T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1][:n]
    values = np.clip(values, 0.0, None)
    components = vectors[:, order]
    # scikit-learn's sign convention (svd_flip on the components): the largest loading of each is positive.
    signs = np.sign(components[np.argmax(np.abs(components), axis=0), np.arange(n)])
    signs[signs == 0] = 1.0
    components = (components * signs).astype(np.float32)
    coords = np.empty((rows, n), dtype=np.float32)
    for s in range(0, rows, step):
        coords[s:s + step] = (np.asarray(x[s:s + step], dtype=np.float32) - mean32) @ components
    whole = float(values.sum())
    ratios = values[order] / whole if whole > 0 else np.zeros(n, dtype=np.float64)
    return coords, np.asarray(ratios, dtype=np.float64)


def _reduce(x: np.ndarray, c: ProjectionConfig) -> tuple[np.ndarray, float | None]:
    n = min(c.pre_pca, x.shape[0], x.shape[1])
    if n >= x.shape[1]:
        return np.asarray(x, dtype=np.float32), None
    z, ratio = _pca(x, n, c.seed)
    return z, float(ratio.sum())


def _tsne(z: np.ndarray, c: ProjectionConfig, report: Reporter) -> tuple[np.ndarray, list[str]]:
    import openTSNE

    n = z.shape[0]
    every = 25
    early, main = 250, 500
    total_calls = (early + main) // every
    calls = [0]

    def callback(iteration: int, error: float, embedding: np.ndarray) -> bool:
        calls[0] += 1
        report(0.25 + 0.75 * min(calls[0] / total_calls, 1.0), f"t-SNE: {calls[0] * every} of {early + main} "
               "iterations")
        return False

    # 3-D needs Barnes-Hut (the FFT method is for 1-D and 2-D); exact neighbours are faster on small sets,
    # and annoy avoids pynndescent's long first-call compile.
    tsne = openTSNE.TSNE(
        n_components=c.dims, perplexity=c.perplexity, metric=c.metric, random_state=c.seed, n_jobs=c.n_jobs,
        neighbors="exact" if n < 1000 else "annoy",
        negative_gradient_method="bh" if c.dims == 3 else "auto",
        early_exaggeration_iter=early, n_iter=main, callbacks=callback, callbacks_every_iters=every,
    )
    report(0.1, "t-SNE: nearest neighbours and affinities")
    emb = tsne.fit(np.asarray(z, dtype=np.float64))
    notes = ["t-SNE distances between clusters are not meaningful; only neighbourhoods are"]
    return np.asarray(emb, dtype=np.float32), notes


#: UMAP finds neighbours exactly (one blocked matrix product) between these sizes: below, it does so itself;
#: above, pynndescent's approximate search is cheaper than n² distances.
_EXACT_KNN = (4096, 50_000)


class _EpochSink(io.StringIO):
    """Where umap-learn's epoch bar (tqdm) writes: each "n/total" becomes a progress report, and a cancel
    raised there stops the layout between two epochs instead of after the last."""

    def __init__(self, report: Reporter) -> None:
        super().__init__()
        self._report = report

    def write(self, text: str) -> int:
        found = re.search(r"(\d+)/(\d+)", text)
        if found and int(found.group(2)) > 0:
            done, total = int(found.group(1)), int(found.group(2))
            self._report(0.4 + 0.6 * done / total, f"UMAP: layout, epoch {done} of {total}")
        return len(text)


def _umap(z: np.ndarray, c: ProjectionConfig, report: Reporter) -> tuple[np.ndarray, list[str]]:
    import umap

    n = z.shape[0]
    knn: tuple[np.ndarray, np.ndarray] | None = None
    if _EXACT_KNN[0] <= n <= _EXACT_KNN[1]:
        from sklearn.neighbors import NearestNeighbors

        # Exact neighbours by brute force beat pynndescent here: seconds instead of its compile and search.
        report(0.15, f"UMAP: the {c.n_neighbors} nearest neighbours of each of {n:,} points")
        nn = NearestNeighbors(n_neighbors=c.n_neighbors, metric=c.metric, algorithm="brute", n_jobs=c.n_jobs)
        dist, idx = nn.fit(z).kneighbors(z)
        knn = (np.ascontiguousarray(idx, dtype=np.int32), np.ascontiguousarray(dist, dtype=np.float32))
    report(0.3, "UMAP: neighbour graph" if knn is not None else
           f"UMAP: approximate neighbours of {n:,} points and the fuzzy graph (no progress inside this step)")
    reducer = umap.UMAP(n_components=c.dims, n_neighbors=c.n_neighbors, min_dist=c.min_dist, metric=c.metric,
                        random_state=c.seed, n_jobs=1, precomputed_knn=knn if knn is not None else (None, None, None),
                        tqdm_kwds={"disable": False, "file": _EpochSink(report), "bar_format": "{n}/{total}",
                                   "mininterval": 0.25})
    with warnings.catch_warnings():
        # umap warns that a seed forces one thread, that a precomputed graph has no search index (we never
        # call transform), and about spectral fallbacks on tiny sets.
        warnings.simplefilter("ignore")
        emb = reducer.fit_transform(np.asarray(z, dtype=np.float32))
    notes = ["UMAP lays points out on one thread so that the seed reproduces the layout"]
    if knn is not None:
        notes.append("neighbours were found exactly (brute force), not approximately")
    return np.asarray(emb, dtype=np.float32), notes


def _axis(m: EmbeddingMatrix, pair: tuple[str, str], name: str) -> tuple[np.ndarray, str]:
    a, b = (w.strip() for w in pair)
    va, _ = m.text_vector(a, strict=True)
    vb, _ = m.text_vector(b, strict=True)
    d = np.asarray(vb, dtype=np.float64) - np.asarray(va, dtype=np.float64)
    size = float(np.linalg.norm(d))
    if not np.isfinite(size) or size == 0.0:
        raise ParameterError(f"{name}: {a!r} and {b!r} have the same vector, so there is no direction; "
                             "choose two different words")
    return d / size, f"cos(·, {b} − {a})"


def _axes(m: EmbeddingMatrix, x: np.ndarray, rows: np.ndarray, c: ProjectionConfig,
          report: Reporter) -> tuple[np.ndarray, tuple[str, ...]]:
    assert c.axis_x is not None
    dirs = [_axis(m, c.axis_x, "axis_x")]
    if c.axis_y is not None:
        dirs.append(_axis(m, c.axis_y, "axis_y"))
    report(0.3, "custom axes: cosine with each direction")
    norms = np.asarray(m.norms[rows], dtype=np.float64)
    norms[norms == 0] = np.inf
    cols = [(np.asarray(x @ d.astype(np.float32), dtype=np.float64) / norms) for d, _ in dirs]
    titles = [t for _, t in dirs]
    rest = c.dims - len(cols)
    if rest > 0:
        # PCA of what the given directions leave: project them out (Gram-Schmidt) first.
        basis: list[np.ndarray] = []
        for d, _ in dirs:
            v = d - sum((d @ b) * b for b in basis) if basis else d
            nv = float(np.linalg.norm(v))
            if nv > 1e-9:
                basis.append(v / nv)
        resid = np.asarray(x, dtype=np.float32).copy()
        for b in basis:
            b32 = b.astype(np.float32)
            resid -= np.outer(resid @ b32, b32)
        report(0.6, "custom axes: PCA of the rest")
        pcs, _ = _pca(resid, rest, c.seed)
        cols.extend(pcs[:, j].astype(np.float64) for j in range(rest))
        what = "x" if len(dirs) == 1 else "x and y"
        titles.extend(f"PC{j + 1} of what {what} leave{'s' if len(dirs) == 1 else ''}" for j in range(rest))
    return np.stack(cols, axis=1).astype(np.float32), tuple(titles)


def project(m: EmbeddingMatrix, selection: Selection, config: ProjectionConfig, *,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Projection:
    """Project the selected rows to 2-D or 3-D.

    Args:
        m: the matrix.
        selection: from :func:`select`.
        config: method and parameters; validated before any work starts.
        progress, cancel: see :mod:`core.progress`.

    Raises:
        ParameterError: a config field is out of range for this selection (named in the message).
        TokenNotFound: a custom-axis word is not in the vocabulary.
        Cancelled: the cancel check said stop.
    """
    c = config
    c.validate(len(selection), m.dim)
    check_memory(len(selection), m.dim, c, whole=_is_whole(m, selection))
    report = Reporter(progress, cancel)
    if c.method == "axes":  # look the words up before any work, so a typo fails at once
        assert c.axis_x is not None
        for pair in (c.axis_x, c.axis_y):
            for w in pair or ():
                m.text_vector(w.strip(), strict=True)
    t0 = time.perf_counter()
    report(0.0, f"{METHOD_NAMES[c.method]}: reading {len(selection):,} rows")
    x = _rows(m, selection)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:  # PCA, t-SNE and UMAP all fail on them with a library's error that names no row
        first = int(selection.indices[bad[0]])
        raise FormatError(f"{m.provenance.path or 'the matrix'}: {bad.size:,} of the {len(selection):,} selected rows "
                          f"hold NaN or infinite values (the first: row {first}, token "
                          f"{m.index_to_key[first]!r}); a projection needs finite vectors, so fix those rows in "
                          "the source file")
    notes: list[str] = []
    explained: np.ndarray | None = None
    pre: float | None = None
    pre_dims: int | None = None
    if c.method == "pca":
        report(0.1, "PCA")
        n = min(max(c.dims, 10), x.shape[0], x.shape[1])
        coords, explained = _pca(x, n, c.seed)
        coords = coords[:, : c.dims]
        titles: tuple[str, ...] = tuple(f"PC{j + 1} ({explained[j]:.1%})" for j in range(c.dims))
    elif c.method == "axes":
        coords, titles = _axes(m, x, selection.indices, c, report)
    else:
        report(0.02, f"PCA to {min(c.pre_pca, x.shape[1])} dimensions")
        z, pre = _reduce(x, c)
        pre_dims = z.shape[1] if pre is not None else None
        report(0.1, f"{METHOD_NAMES[c.method]} on {z.shape[0]:,} points")
        coords, more = (_tsne if c.method == "tsne" else _umap)(z, c, report)
        notes.extend(more)
        titles = tuple(f"{METHOD_NAMES[c.method]} {j + 1}" for j in range(c.dims))
    coords = np.ascontiguousarray(coords, dtype=np.float32)
    report(1.0, "done")
    if explained is not None:
        explained.setflags(write=False)
    return Projection(_readonly(coords), selection, c, titles, explained, pre,
                      pre_dims, time.perf_counter() - t0, tuple(notes))

