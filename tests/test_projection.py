"""Point selection, PCA/t-SNE/UMAP/custom axes and their chart builders, on the real MiniLM matrix.

Oracles are independent of our code: numpy's SVD for PCA (our PCA calls scikit-learn), the safetensors
library's own reader for the vectors, scikit-learn's brute-force NearestNeighbors for neighbourhoods,
scipy for cosines, wordfreq's ``zipf_frequency`` for frequency buckets, and scikit-learn's
``trustworthiness`` for whether t-SNE/UMAP keep neighbourhoods.
"""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
import pytest

import core
from core import charts
from core import projection as pj
from core.errors import Cancelled, ParameterError, TokenNotFound
from core.projection import ProjectionConfig, SelectionConfig


def _pca_oracle(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and explained-variance ratios by numpy's SVD of the centred rows (float64)."""
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s**2
    return xc @ vt[:n].T, var[:n] / var.sum()


def _pca_oracle_gram(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The same by numpy's eigh of the float64 covariance: cheaper than an SVD for 30,522 rows."""
    xc = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    w, v = np.linalg.eigh(xc.T @ xc)
    top = np.argsort(w)[::-1][:n]
    return xc @ v[:, top], w[top] / w.sum()


def _same_up_to_sign(ours: np.ndarray, oracle: np.ndarray, rtol: float = 1e-4) -> None:
    for j in range(oracle.shape[1]):
        sign = np.sign(np.dot(ours[:, j], oracle[:, j]))
        np.testing.assert_allclose(sign * ours[:, j], oracle[:, j], atol=rtol * np.abs(oracle[:, j]).max())


# -- selection -------------------------------------------------------------------------------------------

def test_first_rows_and_all_rows(demo: core.EmbeddingMatrix) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="first", sample=100))
    assert sel.indices.tolist() == list(range(100))
    assert not sel.indices.flags.writeable
    assert "first 100 of the 30,522 rows" in sel.description  # how many, of how many, and which
    assert "30,522 rows" in pj.select(demo, SelectionConfig()).description


@pytest.mark.parametrize(("n", "seed"), [(1, 0), (500, 0), (500, 1), (30_000, 7)])
def test_random_sample_is_reproducible_without_repeats(demo: core.EmbeddingMatrix, n: int, seed: int) -> None:
    cfg = SelectionConfig(sampling="random", sample=n, seed=seed)
    a, b = pj.select(demo, cfg), pj.select(demo, cfg)
    assert np.array_equal(a.indices, b.indices)
    assert len(a) == n and np.unique(a.indices).size == n
    assert a.indices.min() >= 0 and a.indices.max() < len(demo)
    assert f"seed {seed}, no repeats" in a.description


def test_random_seeds_differ(demo: core.EmbeddingMatrix) -> None:
    a = pj.select(demo, SelectionConfig(sampling="random", sample=500, seed=0)).indices
    b = pj.select(demo, SelectionConfig(sampling="random", sample=500, seed=1)).indices
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("n", [1000, 777, 31])
def test_stratified_keeps_the_kinds_shares(demo: core.EmbeddingMatrix, n: int) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="stratified", sample=n, seed=3))
    assert len(sel) == n and np.unique(sel.indices).size == n
    everyone = collections.Counter(demo.kinds)
    taken = collections.Counter(demo.kinds[i] for i in sel.indices)
    for kind, count in everyone.items():
        share = n * count / len(demo)
        assert math.floor(share) <= taken[kind] <= math.ceil(share), (kind, taken[kind], share)
    assert dict(taken) == {k: v for k, v in sel.shares.items() if v}
    again = pj.select(demo, SelectionConfig(sampling="stratified", sample=n, seed=3))
    assert np.array_equal(sel.indices, again.indices)


def test_kinds_filter(demo: core.EmbeddingMatrix) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="random", sample=50, kinds=("number",)))
    assert {demo.kinds[i] for i in sel.indices} == {"number"}
    assert "of the 937 rows of kind number" in sel.description


def test_sample_larger_than_the_matrix(demo: core.EmbeddingMatrix) -> None:
    with pytest.raises(ParameterError, match=r"sample=40,000: larger than the matrix, which has 30,522 rows"):
        pj.select(demo, SelectionConfig(sampling="random", sample=40_000))
    with pytest.raises(ParameterError, match="sample=0"):
        pj.select(demo, SelectionConfig(sampling="first", sample=0))
    with pytest.raises(ParameterError, match="sampling='every'"):
        pj.select(demo, SelectionConfig(sampling="every"))
    with pytest.raises(ParameterError, match="kinds: 'verb'"):
        pj.select(demo, SelectionConfig(kinds=("verb",)))


def test_neighborhood_matches_brute_force(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    from sklearn.neighbors import NearestNeighbors

    sel = pj.select(demo, SelectionConfig(sampling="neighbours", queries=("king", "paris"), k=10))
    nn = NearestNeighbors(n_neighbors=11, metric="cosine", algorithm="brute").fit(demo_weights)
    for word in ("king", "paris"):
        row = demo.get_index(word)
        _, oracle = nn.kneighbors(demo_weights[row][None, :])
        expected = [i for i in oracle[0].tolist() if i != row][:10]
        mine = [int(i) for i, g in zip(sel.indices, sel.groups or (), strict=True) if g == word]
        assert mine[0] == row
        assert set(mine[1:]) == set(expected)
    assert "the 10 nearest neighbours (cosine) of 'king', 'paris'" in sel.description
    assert pj.colour(demo, sel, "query").values == sel.groups


def test_neighborhood_of_a_missing_word(demo: core.EmbeddingMatrix) -> None:
    with pytest.raises(TokenNotFound):
        pj.select(demo, SelectionConfig(sampling="neighbours", queries=("🦜",), k=5))
    with pytest.raises(ParameterError, match="queries"):
        pj.select(demo, SelectionConfig(sampling="neighbours", queries=()))


def test_pasted_list(demo: core.EmbeddingMatrix) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="list", tokens=("king", "Queen", "zzqxw", "king"),
                                          strict=False))
    assert [demo.index_to_key[i] for i in sel.indices] == ["king", "queen"]
    assert sel.missing == ("zzqxw",)
    assert "1 not in the vocabulary was left out: 'zzqxw'" in sel.description
    with pytest.raises(TokenNotFound, match="zzqxw"):
        pj.select(demo, SelectionConfig(sampling="list", tokens=("king", "zzqxw")))


# -- PCA ---------------------------------------------------------------------------------------------------

def test_pca_of_the_whole_matrix_equals_the_svd_oracle(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    sel = pj.select(demo, SelectionConfig())
    p = pj.project(demo, sel, ProjectionConfig(method="pca", dims=3))
    oracle, ratios = _pca_oracle_gram(demo_weights, 10)
    assert p.coords.shape == (30522, 3) and p.coords.dtype == np.float32
    assert not p.coords.flags.writeable
    _same_up_to_sign(p.coords, oracle[:, :3])
    assert p.explained_variance is not None
    np.testing.assert_allclose(p.explained_variance, ratios, rtol=1e-4)
    # The caption gives the method, the points and the share of the variance the 3 components shown explain.
    assert "PCA" in p.caption and "30,522 rows" in p.caption and f"{ratios[:3].sum():.1%}" in p.caption


def test_pca_of_a_sample_equals_the_svd_oracle(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="stratified", sample=3000, seed=1))
    p = pj.project(demo, sel, ProjectionConfig(method="pca", dims=2))
    oracle, _ = _pca_oracle(demo_weights[sel.indices], 2)
    _same_up_to_sign(p.coords, oracle)
    assert p.axis_titles[0].startswith("PC1 (")


def test_pca_of_rows_with_a_large_common_mean() -> None:
    # Rows far from the origin and close together: a float32 XᵀX − nμμᵀ would lose their variance.
    rng = np.random.default_rng(5)
    x = (100.0 + rng.standard_normal((5000, 48)) * np.linspace(0.001, 0.05, 48)).astype(np.float32)
    m = core.EmbeddingMatrix(x, [f"t{i}" for i in range(5000)])
    p = pj.project(m, pj.select(m, SelectionConfig()), ProjectionConfig(dims=2))
    oracle, ratios = _pca_oracle(x, 10)
    _same_up_to_sign(p.coords, oracle[:, :2], rtol=1e-3)
    assert p.explained_variance is not None
    np.testing.assert_allclose(p.explained_variance, ratios, rtol=1e-3)


def test_progress_is_reported_and_cancel_stops(demo: core.EmbeddingMatrix) -> None:
    seen: list[float] = []
    sel = pj.select(demo, SelectionConfig(sampling="first", sample=500))
    pj.project(demo, sel, ProjectionConfig(), progress=lambda f, _msg: seen.append(f))
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        pj.project(demo, sel, ProjectionConfig(), cancel=lambda: True)


# -- t-SNE and UMAP (a few hundred points) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def small(demo: core.EmbeddingMatrix) -> pj.Selection:
    return pj.select(demo, SelectionConfig(sampling="neighbours", queries=("king", "paris", "red", "three"), k=60))


def test_tsne_keeps_neighborhoods_and_its_seed(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                                small: pj.Selection) -> None:
    from sklearn.manifold import trustworthiness

    cfg = ProjectionConfig(method="tsne", perplexity=20, seed=3, n_jobs=1)
    fractions: list[float] = []
    a = pj.project(demo, small, cfg, progress=lambda f, _m: fractions.append(f))
    b = pj.project(demo, small, cfg)
    assert a.coords.shape == (len(small), 2) and np.isfinite(a.coords).all()
    np.testing.assert_array_equal(a.coords, b.coords)
    assert trustworthiness(demo_weights[small.indices], a.coords, n_neighbors=10, metric="cosine") > 0.85
    assert a.pre_pca_dims == 50 and a.pre_pca_variance is not None and 0 < a.pre_pca_variance < 1
    assert "PCA to 50 dimensions first" in a.caption and "perplexity 20" in a.caption
    assert len(fractions) > 10 and fractions[-1] == 1.0


def test_tsne_in_3d_and_cancel(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    p = pj.project(demo, small, ProjectionConfig(method="tsne", dims=3, perplexity=10, n_jobs=1))
    assert p.coords.shape == (len(small), 3)
    calls = [0]

    def cancel() -> bool:
        calls[0] += 1
        return calls[0] > 5

    with pytest.raises(Cancelled):
        pj.project(demo, small, ProjectionConfig(method="tsne", perplexity=10, n_jobs=1), cancel=cancel)


def test_umap_keeps_neighborhoods_and_its_seed(demo: core.EmbeddingMatrix, demo_weights: np.ndarray,
                                                small: pj.Selection) -> None:
    from sklearn.manifold import trustworthiness

    cfg = ProjectionConfig(method="umap", n_neighbors=10, min_dist=0.2, seed=5)
    a = pj.project(demo, small, cfg)
    b = pj.project(demo, small, cfg)
    assert a.coords.shape == (len(small), 2) and np.isfinite(a.coords).all()
    np.testing.assert_array_equal(a.coords, b.coords)
    assert trustworthiness(demo_weights[small.indices], a.coords, n_neighbors=10, metric="cosine") > 0.85
    assert "n_neighbors 10, min_dist 0.2, cosine distance, seed 5" in a.caption


@pytest.mark.slow
def test_umap_with_exact_neighbors_on_thousands(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    from sklearn.manifold import trustworthiness

    sel = pj.select(demo, SelectionConfig(sampling="stratified", sample=4500, seed=1))
    p = pj.project(demo, sel, ProjectionConfig(method="umap"))
    assert any("exactly" in n for n in p.notes)  # the note says the neighbours were not approximated
    # umap-learn's own (approximate) neighbours give 0.80 on these rows, PCA 0.68.
    assert trustworthiness(demo_weights[sel.indices], p.coords, n_neighbors=10, metric="cosine") > 0.75


def test_configs_are_validated_up_front(demo: core.EmbeddingMatrix) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="first", sample=50))
    cases = [
        (ProjectionConfig(method="tsne", perplexity=30), r"perplexity=30: too large for 50 points.*at most 16\.3"),
        (ProjectionConfig(method="tsne", perplexity=0), "perplexity=0: must be greater than 0"),
        (ProjectionConfig(method="umap", n_neighbors=50), "n_neighbors=50: must be smaller than the number of points"),
        (ProjectionConfig(method="umap", n_neighbors=1), "n_neighbors=1: must be at least 2"),
        (ProjectionConfig(method="umap", min_dist=1.5), "min_dist=1.5"),
        (ProjectionConfig(method="umap", metric="hamming"), "metric='hamming'"),
        (ProjectionConfig(method="mds"), "method='mds'"),
        (ProjectionConfig(dims=4), "dims=4: must be 2 or 3"),
        (ProjectionConfig(method="axes"), "axis_x: custom axes need two words"),
        (ProjectionConfig(method="axes", axis_x=("man", "man")), "axis_x: 'man' → 'man' is no direction"),
        (ProjectionConfig(method="axes", axis_x=("man", "")), "axis_x=.*needs two words"),
    ]
    for cfg, message in cases:
        with pytest.raises(ParameterError, match=message):
            pj.project(demo, sel, cfg)
    tiny = pj.select(demo, SelectionConfig(sampling="list", tokens=("king", "queen")))
    with pytest.raises(ParameterError, match="at least 3"):
        pj.project(demo, tiny, ProjectionConfig())


# -- custom semantic axes ----------------------------------------------------------------------------------

def test_axes_are_cosines_with_the_directions(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    from scipy.spatial.distance import cosine

    words = ("man", "woman", "king", "queen", "boy", "girl", "prince", "princess")
    sel = pj.select(demo, SelectionConfig(sampling="list", tokens=words))
    p = pj.project(demo, sel, ProjectionConfig(method="axes", axis_x=("man", "woman"), axis_y=("king", "queen")))
    w = {t: demo_weights[demo.get_index(t)].astype(np.float64) for t in words}
    gender, royal = w["woman"] - w["man"], w["queen"] - w["king"]
    for i, t in enumerate(words):
        assert p.coords[i, 0] == pytest.approx(1 - cosine(w[t], gender), abs=1e-5)
        assert p.coords[i, 1] == pytest.approx(1 - cosine(w[t], royal), abs=1e-5)
    x = dict(zip(words, p.coords[:, 0], strict=True))
    assert x["woman"] > x["man"] and x["queen"] > x["king"] and x["girl"] > x["boy"]
    assert p.axis_titles == ("cos(·, woman − man)", "cos(·, queen − king)")


def test_axes_with_pca_for_the_rest(demo: core.EmbeddingMatrix, demo_weights: np.ndarray) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="random", sample=800, seed=2))
    p = pj.project(demo, sel, ProjectionConfig(method="axes", axis_x=("man", "woman"), dims=3))
    d = (demo_weights[demo.get_index("woman")] - demo_weights[demo.get_index("man")]).astype(np.float64)
    u = d / np.linalg.norm(d)
    x = demo_weights[sel.indices].astype(np.float64)
    oracle, _ = _pca_oracle(x - np.outer(x @ u, u), 2)
    _same_up_to_sign(p.coords[:, 1:], oracle, rtol=1e-3)
    assert p.axis_titles[1] == "PC1 of what x leaves"


def test_axes_words_must_exist(demo: core.EmbeddingMatrix) -> None:
    sel = pj.select(demo, SelectionConfig(sampling="first", sample=10))
    with pytest.raises(TokenNotFound, match="🦜"):
        pj.project(demo, sel, ProjectionConfig(method="axes", axis_x=("man", "🦜")))


# -- colour, search, density --------------------------------------------------------------------------------

def test_colour_by_kind_and_frequency(demo: core.EmbeddingMatrix) -> None:
    import wordfreq

    sel = pj.select(demo, SelectionConfig(sampling="random", sample=400, seed=4))
    by_kind = pj.colour(demo, sel, "kind")
    assert by_kind.values == tuple(demo.kinds[i] for i in sel.indices)
    freq = pj.colour(demo, sel, "frequency")
    edges = [(6, 0), (5, 1), (4, 2), (3, 3), (0.01, 4)]
    checked = 0
    for i, bucket in zip(sel.indices, freq.values, strict=True):
        token = demo.index_to_key[i]
        if demo.kinds[i] != "word":
            assert bucket == "not a word"
            continue
        z = wordfreq.zipf_frequency(token, "en")
        expected = next((pj.FREQUENCY_BUCKETS[b] for e, b in edges if z >= e), pj.FREQUENCY_BUCKETS[5])
        assert bucket == expected, (token, z, bucket)
        checked += 1
    assert checked > 200
    the = pj.select(demo, SelectionConfig(sampling="list", tokens=("the", "##ing")))
    assert pj.colour(demo, the, "frequency").values == ("very common (zipf ≥ 6)", "not a word")
    with pytest.raises(ParameterError, match="colour='query'"):
        pj.colour(demo, sel, "query")
    with pytest.raises(ParameterError, match="lang='xx'"):
        pj.frequency_buckets(demo, [1], lang="xx")


def test_colour_by_a_metadata_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "vectors.tsv").write_text("\n".join("\t".join(f"{v:.4f}" for v in row)
                                                    for row in rng.normal(size=(6, 4))) + "\n")
    (tmp_path / "metadata.tsv").write_text("word\tpos\ncat\tnoun\ndog\tnoun\nrun\tverb\nsee\tverb\nred\tadj\n"
                                           "big\tadj\n")
    m = core.load(tmp_path)
    sel = pj.select(m, SelectionConfig())
    assert "pos" in pj.colour_options(m, sel)
    c = pj.colour(m, sel, "pos")
    assert c.values == ("noun", "noun", "verb", "verb", "adj", "adj")
    p = pj.project(m, sel, ProjectionConfig())
    assert list(p.frame(m, c).columns) == ["token", "id", "kind", "x", "y", "colour", "word", "pos"]


def test_search_marks_the_label_and_its_neighbors(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    p = pj.project(demo, small, ProjectionConfig())
    hood = pj.search(demo, p, "queen", k=5)
    assert hood.in_selection and len(hood.positions) == 5
    tokens = [demo.index_to_key[small.indices[i]] for i in hood.positions]
    assert "king" in tokens and "queen" not in tokens
    assert list(hood.similarities) == sorted(hood.similarities, reverse=True)
    marks = pj.highlight_column(len(p), hood, p)
    assert marks.count("match") == 1 and marks.count("neighbour") == 5
    with pytest.raises(TokenNotFound):
        pj.search(demo, p, "🦜")


def test_density_counts_every_point(demo: core.EmbeddingMatrix) -> None:
    p = pj.project(demo, pj.select(demo, SelectionConfig()), ProjectionConfig())
    cells = pj.density(p.coords, bins=60)
    assert int(cells["count"].sum()) == len(demo)
    assert len(cells) <= 3600 and (cells["x2"] > cells["x"]).all()


# -- chart builders ---------------------------------------------------------------------------------------

def test_scatter_chart(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    p = pj.project(demo, small, ProjectionConfig())
    c = pj.colour(demo, small, "kind")
    frame = p.frame(demo, c)
    plain = charts.projection_scatter(frame, axis_titles=p.axis_titles, colour_title=c.title,
                                      colour_order=c.order).to_dict()
    assert plain["mark"]["type"] == "circle"
    enc = plain["encoding"]
    assert enc["x"]["field"] == "x" and enc["y"]["field"] == "y" and enc["color"]["field"] == "colour"
    assert [t["field"] for t in enc["tooltip"]] == ["token", "id", "colour"]
    assert {prm["name"] for prm in plain["params"]} == {"brush", "pick"}
    points = plain["datasets"][plain["data"]["name"]]
    assert [r["token"] for r in points] == [demo.index_to_key[i] for i in small.indices]
    np.testing.assert_allclose([[r["x"], r["y"]] for r in points], p.coords, rtol=1e-6)
    frame["highlight"] = pj.highlight_column(len(frame), pj.search(demo, p, "king", 3), p)
    layered = charts.projection_scatter(frame, axis_titles=p.axis_titles).to_dict()
    assert [lyr["mark"]["type"] for lyr in layered["layer"]] == ["circle", "point", "text"]
    assert layered["layer"][2]["encoding"]["text"]["field"] == "token"
    marked = collections.Counter(r["highlight"] for r in layered["datasets"][layered["data"]["name"]])
    assert marked["match"] == 1 and marked["neighbour"] == 3  # 'king' and its 3 nearest, ringed and labelled


def test_density_and_variance_charts(demo: core.EmbeddingMatrix) -> None:
    p = pj.project(demo, pj.select(demo, SelectionConfig()), ProjectionConfig())
    dens = charts.projection_density(pj.density(p.coords), axis_titles=p.axis_titles, points=len(p)).to_dict()
    assert dens["mark"]["type"] == "rect"
    assert sum(c["count"] for c in dens["datasets"][dens["data"]["name"]]) == len(demo)  # every point, binned
    assert dens["encoding"]["color"]["field"] == "count" and dens["encoding"]["color"]["scale"]["type"] == "log"
    assert "30,522 points, binned" in dens["title"]
    assert p.explained_variance is not None
    bars = charts.explained_variance_bar(p.explained_variance, shown=2).to_dict()
    assert [lyr["mark"]["type"] for lyr in bars["layer"]] == ["bar", "text"]
    assert bars["layer"][0]["encoding"]["y"]["field"] == "ratio"
    rows = bars["datasets"][bars["data"]["name"]]
    np.testing.assert_allclose([r["ratio"] for r in rows], p.explained_variance)
    assert [r["shown"] for r in rows[:3]] == ["shown", "shown", "not shown"]


def test_scatter_3d_figure(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    p = pj.project(demo, small, ProjectionConfig(dims=3))
    c = pj.colour(demo, small, "kind")
    frame = p.frame(demo, c)
    fig = charts.projection_scatter_3d(frame, axis_titles=p.axis_titles, colour_order=c.order)
    assert {t.type for t in fig.data} == {"scatter3d"}
    assert [t.name for t in fig.data] == [k for k in c.order if k in set(c.values)]
    assert sum(len(t.x) for t in fig.data) == len(p)


def _typed(array: dict) -> np.ndarray:
    """A plotly typed array ({"dtype", "bdata"}) as numpy, decoded here rather than by plotly."""
    import base64

    return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))


def test_map_of_every_point(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    import json

    import plotly.io

    p = pj.project(demo, small, ProjectionConfig())
    c = pj.colour(demo, small, "kind")
    frame = p.frame(demo, c)
    fig = charts.projection_map(frame, axis_titles=p.axis_titles, colour_title=c.title, colour_order=c.order)
    assert {t.type for t in fig.data} == {"scattergl"}
    assert [t.name for t in fig.data] == [k for k in c.order if k in set(c.values)]
    assert fig.layout.dragmode == "select" and fig.layout.xaxis.title.text == p.axis_titles[0]
    # What goes to the browser: coordinates as float32 and ids as int32 typed arrays, labels as hover text.
    spec = json.loads(plotly.io.to_json(fig, validate=False))
    total = 0
    for trace in spec["data"]:
        mine = frame[frame["colour"] == trace["name"]]
        assert trace["x"]["dtype"] == "f4" and trace["customdata"]["dtype"] == "i4"
        np.testing.assert_array_equal(_typed(trace["x"]), mine["x"].to_numpy(np.float32))
        np.testing.assert_array_equal(_typed(trace["y"]), mine["y"].to_numpy(np.float32))
        np.testing.assert_array_equal(_typed(trace["customdata"]), mine["id"].to_numpy())
        assert trace["text"] == mine["token"].tolist()
        assert "%{text}" in trace["hovertemplate"]
        total += len(trace["text"])
    assert total == len(p)
    # A selection (curve, index within it) maps back to matrix rows.
    second = spec["data"][1]
    points = [{"curve_number": 1, "point_index": 2, "x": 0.0, "y": 0.0}, {"curve_number": 0, "point_index": 0},
              {"curve_number": 1, "point_index": 2}, {"curve_number": 9, "point_index": 0}, "junk"]
    assert charts.selected_ids(fig, points) == [int(_typed(second["customdata"])[2]),
                                                int(_typed(spec["data"][0]["customdata"])[0])]
    # A searched label is ringed and labelled in a last trace.
    frame["highlight"] = pj.highlight_column(len(frame), pj.search(demo, p, "king", 3), p)
    marked = charts.projection_map(frame, axis_titles=p.axis_titles)
    assert marked.data[-1].name == "search" and marked.data[-1].mode == "markers+text"
    assert sorted(marked.data[-1].text) == sorted(frame.loc[frame["highlight"] != "", "token"])


def test_map_lumps_many_categories(demo: core.EmbeddingMatrix, small: pj.Selection) -> None:
    p = pj.project(demo, small, ProjectionConfig())
    frame = p.frame(demo)
    frame["colour"] = [f"c{i % 30}" for i in range(len(frame))]
    fig = charts.projection_map(frame)
    names = [t.name for t in fig.data]
    assert len(names) == charts.MAP_CATEGORIES + 1 and names[-1] == "(the rest)"
    assert sum(len(t.x) for t in fig.data) == len(p)
