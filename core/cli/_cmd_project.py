"""``project`` and ``export``: coordinates of a 2-D/3-D projection as CSV, and the matrix in other formats."""

from __future__ import annotations

import argparse

from core import export as ex
from core import projection as pj
from core.cli._common import add_json, add_source, emit, open_source, progress_bar


def _add_selection(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--sample", type=int, metavar="N", help=f"{what} N rows (default: every row)")
    p.add_argument("--sampling", choices=("first", "random", "stratified"), default="first",
                   help="how the N rows are chosen: the first N (file order; word2vec files list the most "
                        "frequent words first), a seeded random sample, or a sample stratified by token kind "
                        "(default: first)")
    p.add_argument("--seed", type=int, default=0, help="random seed for sampling and the method (default: 0)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("project", help="PCA, t-SNE or UMAP to 2-D/3-D; writes token,id,x,y[,z] as CSV")
    add_source(p)
    p.add_argument("--method", choices=("pca", "tsne", "umap"), required=True)
    p.add_argument("--dims", type=int, choices=(2, 3), default=2)
    _add_selection(p, "project")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default: 30)")
    p.add_argument("--n-neighbors", type=int, default=15, help="UMAP n_neighbors (default: 15)")
    p.add_argument("--min-dist", type=float, default=0.1, help="UMAP min_dist (default: 0.1)")
    p.add_argument("--metric", choices=pj.METRICS, default="cosine", help="t-SNE/UMAP distance (default: cosine)")
    p.add_argument("--out", required=True, metavar="CSV", help="the coordinates file to write (must be new)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_json(p)
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("export", help="write the matrix as Projector TSV, word2vec text/binary, safetensors "
                                      "or .npy + vocab.txt")
    add_source(p, format_flag="--input-format")  # --format names what is written
    p.add_argument("--format", choices=ex.EXPORT_FORMATS, required=True,
                   help="projector, safetensors and npy write a folder; word2vec and word2vec-bin one file")
    p.add_argument("--out", required=True, metavar="PATH", help="the folder or file to write (must be new)")
    p.add_argument("--columns", nargs="+", metavar="COL",
                   help="projector: metadata columns after the token (e.g. kind id)")
    _add_selection(p, "export")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--no-verify", action="store_true", help="skip reopening the export to check it")
    add_json(p)
    p.set_defaults(func=cmd_export)


def _selection(args: argparse.Namespace) -> pj.SelectionConfig:
    return pj.SelectionConfig(sampling=args.sampling, sample=args.sample, seed=args.seed)


def cmd_project(args: argparse.Namespace) -> int:
    m = open_source(args)
    sel = pj.select(m, _selection(args))
    cfg = pj.ProjectionConfig(method=args.method, dims=args.dims, seed=args.seed, perplexity=args.perplexity,
                              n_neighbors=args.n_neighbors, min_dist=args.min_dist, metric=args.metric)
    cfg.validate(len(sel), m.dim)
    with progress_bar(f"{pj.METHOD_NAMES[args.method]}") as bar:
        proj = pj.project(m, sel, cfg, progress=bar)
    out = ex.write_coordinates(m, proj, args.out, force=args.force)
    ev = proj.explained_variance
    payload = {
        "out": str(out), "method": args.method, "dims": proj.dims, "points": len(proj), "rows": len(m),
        "sampling": args.sampling, "sample": args.sample, "seed": args.seed, "selection": sel.description,
        "columns": ["token", "id", *"xyz"[: proj.dims]], "axis_titles": list(proj.axis_titles),
        "explained_variance": None if ev is None else [float(v) for v in ev[: proj.dims]],
        "pre_pca_variance": proj.pre_pca_variance, "seconds": round(proj.seconds, 3),
        "caption": proj.caption,
    }
    emit(args, payload, lambda: f"{proj.caption}\nwrote {len(proj):,} rows to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    m = open_source(args)
    rows = None
    if args.sample is not None:
        rows = pj.select(m, _selection(args)).indices
    with progress_bar(f"export {args.format}") as bar:
        done = ex.export(m, args.out, args.format, rows=rows, columns=args.columns, force=args.force,
                         progress=bar)
    if not args.no_verify:
        ex.verify(m, done, rows)
    payload = {**done.to_json(), "verified": not args.no_verify}
    emit(args, payload, lambda: "\n".join([
        f"wrote {done.rows:,} × {done.dim} as {done.format} to {done.target}",
        *(f"  {f}" for f in done.files),
        *(f"note: {n}" for n in done.notes),
        "reopened through core.load: same tokens and values" if not args.no_verify else ""]))
    return 0
