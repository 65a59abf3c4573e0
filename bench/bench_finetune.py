"""SGNS throughput: Embedscope's skip-gram against gensim ``Word2Vec`` on gensim's ``lee_background.cor``.

Same work on both sides: skip-gram with negative sampling, the same dim, window (5), negatives (5), epochs
(5), subsampling (1e-3), min_count 1, linear learning-rate decay from 0.025; gensim with ``workers=1`` and
Embedscope with one torch thread, measured alternately in this process (best of 3). Vocabulary building and
tokenising are outside the timing on both sides. Throughput is raw corpus words (tokens) × epochs / seconds.
Embedscope starts from a matrix holding the corpus vocabulary (random rows, like gensim's start); context
vectors start small and random, as gensim's do.
"""

from __future__ import annotations

import time

import numpy as np

from bench._harness import Result

EPOCHS, WINDOW, NEGATIVES, SAMPLE, REPEAT = 5, 5, 5, 1e-3, 3


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
            g, "≥ 0.25× gensim words/s",
            f"{words / o:,.0f} tokens/s vs {words / g:,.0f} words/s ({o and g / o:.2f}×)"))
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
