"""SGNS throughput: Embedscope's skip-gram against gensim ``Word2Vec`` on gensim's ``lee_background.cor``.

Same work on both sides: skip-gram with negative sampling, the same dim, window (5), negatives (5), epochs
(5), subsampling (1e-3), min_count 1, linear learning-rate decay from 0.025; gensim with ``workers=1`` and
Embedscope with one torch thread, measured alternately in this process (best of 3). Vocabulary building and
tokenising are outside the timing on both sides. Throughput is raw corpus words (tokens) × epochs / seconds.
Embedscope starts from a matrix holding the corpus vocabulary (random rows, like gensim's start); context
vectors start small and random, as gensim's do.

Processes: the same run on 1 and on 2 gloo processes launched through torchrun (``embedscope finetune
--nproc 2``), dim 100. Throughput is the run card's training tokens/s (all ranks' tokens over the slowest
rank's training time: the whole corpus over the time its ranks took); the wall time of the launch, which
adds starting Python, torch and the process group on each rank, is given in the note.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from bench._harness import Result

EPOCHS, WINDOW, NEGATIVES, SAMPLE, REPEAT = 5, 5, 5, 1e-3, 3
#: The processes bench also runs on the corpus repeated this many times (480,000 words).
COPIES = 8


def _lee() -> list[list[str]]:
    from gensim.models.word2vec import LineSentence
    from gensim.test.utils import datapath

    return list(LineSentence(datapath("lee_background.cor")))


def _gensim_seconds(sents: list[list[str]], dim: int) -> float:
    from gensim.models import Word2Vec

    model = Word2Vec(vector_size=dim, window=WINDOW, negative=NEGATIVES, sg=1, min_count=1, sample=SAMPLE,
                     workers=1, seed=1, epochs=EPOCHS)
    model.build_vocab(sents)
    t = time.perf_counter()
    model.train(sents, total_examples=len(sents), epochs=EPOCHS)
    return time.perf_counter() - t


def _ours_seconds(sents: list[list[str]], dim: int, device: str = "cpu") -> float:
    from core.finetune import SGNSConfig, tokenize, train_sgns
    from core.matrix import EmbeddingMatrix

    vocab = list(dict.fromkeys(w for s in sents for w in s))
    rng = np.random.default_rng(1)
    m = EmbeddingMatrix(((rng.random((len(vocab), dim)) - 0.5) / dim).astype(np.float32), vocab)
    corpus = tokenize(m, [" ".join(s) for s in sents])
    config = SGNSConfig(epochs=EPOCHS, window=WINDOW, negatives=NEGATIVES, subsample=SAMPLE, context="random",
                        watch_size=0, threads=1, device=device, seed=1)
    t = time.perf_counter()
    train_sgns(m, corpus, config)
    return time.perf_counter() - t


def _write_matrix(sents: list[list[str]], dim: int, folder: Path) -> Path:
    """The random starting matrix as a word2vec text file, so the ranks can open it."""
    vocab = list(dict.fromkeys(w for s in sents for w in s))
    rng = np.random.default_rng(1)
    vecs = ((rng.random((len(vocab), dim)) - 0.5) / dim).astype(np.float32)
    path = folder / "start.txt"
    with path.open("w", encoding="utf-8") as f:
        f.write(f"{len(vocab)} {dim}\n")
        for w, v in zip(vocab, vecs, strict=True):
            f.write(w + " " + " ".join(f"{x:.6f}" for x in v) + "\n")
    return path


def _processes(sents: list[list[str]], dim: int, nproc: int, folder: Path,
               copies: int = 1) -> tuple[float, float, float]:
    """(training tokens/s from the run card, tokens per CPU-second of the busiest rank, wall seconds of the
    launch) on ``nproc`` processes. The second is what the run would reach with a free core per rank: on a
    machine shared with other work (and with the kernel's autogroup scheduling, which gives all ranks of
    one session one session's share) the first cannot show the scaling. ``copies`` > 1 trains on the corpus
    repeated that many times, so that what every rank does once per epoch (subsampling tables, the negative
    table, the syncs) weighs what it does on a real domain corpus rather than on 60,000 words."""
    from gensim.test.utils import datapath

    import core
    from core.finetune import SGNSConfig, distributed, finetune, load_run

    src = _write_matrix(sents, dim, folder)
    config = SGNSConfig(epochs=EPOCHS, window=WINDOW, negatives=NEGATIVES, subsample=SAMPLE, context="random",
                        watch_size=0, threads=1, device="cpu", seed=1)
    out = folder / f"run-{nproc}-{time.monotonic_ns()}"
    corpus = Path(datapath("lee_background.cor"))
    if copies > 1:
        text = corpus.read_text(encoding="utf-8")
        corpus = folder / f"lee-x{copies}.cor"
        corpus.write_text(text * copies, encoding="utf-8")
    t = time.perf_counter()
    if nproc == 1:
        run = finetune(core.load(str(src)), corpus, config, out)
    else:
        run = load_run(distributed.launch(str(src), corpus, config, out, nproc))
    wall = time.perf_counter() - t
    ranks = run.card["distributed"]["ranks"]
    cpu = max(r["cpu_seconds"] for r in ranks)
    return float(run.card["metrics"]["tokens_per_s"]), sum(r["tokens"] for r in ranks) / cpu, wall


def run() -> list[Result]:
    sents = _lee()
    words = sum(len(s) for s in sents) * EPOCHS
    results: list[Result] = []
    for dim in (100, 384):
        ours, theirs = [], []
        for _ in range(REPEAT):  # alternate, so both sides see the same machine load
            theirs.append(_gensim_seconds(sents, dim))
            ours.append(_ours_seconds(sents, dim))
        o, g = min(ours), min(theirs)
        results.append(Result(
            "finetune", f"SGNS on lee_background.cor, dim {dim}, CPU 1 thread", o, "gensim Word2Vec sg=1 workers=1",
            g, "≥ 0.5× gensim words/s",
            f"{words / o:,.0f} tokens/s vs {words / g:,.0f} words/s ({o and g / o:.2f}×)"))
    with tempfile.TemporaryDirectory(prefix="embedscope-bench-") as tmp:
        for copies in (1, COPIES):
            one, two = [], []
            for _ in range(REPEAT if copies == 1 else 2):
                one.append(_processes(sents, 100, 1, Path(tmp), copies))
                two.append(_processes(sents, 100, 2, Path(tmp), copies))
            tps1, cpu1, wall1 = max(one)
            tps2, cpu2, wall2 = max(two)
            name = "lee_background.cor" + (f" × {copies} ({words * copies // EPOCHS:,} words)" if copies > 1 else "")
            results.append(Result(
                "finetune", f"SGNS on {name}, dim 100, 2 gloo processes vs 1", words * copies / tps2,
                "the same run on 1 process", words * copies / tps1, "≥ 1.6× one process",
                f"{tps2:,.0f} vs {tps1:,.0f} training tokens/s ({tps2 / tps1:.2f}×); per CPU-second of the busiest "
                f"rank {cpu2:,.0f} vs {cpu1:,.0f} ({cpu2 / cpu1:.2f}×, the scaling with a free core per rank); "
                f"wall with start-up {wall2:.1f} s vs {wall1:.1f} s"))
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        cuda = False
    if cuda:
        _ours_seconds(sents, 100, "cuda")  # warm-up: kernels and the allocator
        o = min(_ours_seconds(sents, 100, "cuda") for _ in range(REPEAT))
        g = min(_gensim_seconds(sents, 100) for _ in range(REPEAT))
        results.append(Result("finetune", "SGNS on lee_background.cor, dim 100, CUDA", o,
                              "gensim Word2Vec sg=1 workers=1 (CPU)", g, "≥ 5× gensim words/s",
                              f"{words / o:,.0f} tokens/s vs {words / g:,.0f} words/s ({g / o:.2f}×)"))
    return results
