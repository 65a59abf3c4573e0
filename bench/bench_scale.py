"""Big vocabularies at interactive speed (issue 17): the targets that bench_audit, bench_projection and bench_big
do not measure, each part on its own seeded fixture, side by side with a baseline where one exists.

- ``query``: one neighbour query (k=10) on the 262,144 × 640 matrix of :mod:`bench._bigvocab` after the first,
  as the Neighbours page runs it (``search.prepare_search`` once, then queries), and the float32 scan of a
  matrix never prepared; against gensim ``most_similar`` on the same vectors (``fill_norms`` first).
- ``analogy``: ``questions-words.txt`` on a GloVe-sized 400,000 × 50 word2vec binary file (the questions' words
  lower-cased first, then wordfreq's commonest English words, then filler tokens; seeded normal values), per
  question, against gensim ``evaluate_word_analogies`` on the same vectors and the same ``restrict_vocab`` (on a
  tenth of the questions: it answers them one by one), and against our own per-question figure on MiniLM
  (30522×384) measured in the same run.
- ``audit``: open + full audit of a 128,256 × 4,096 bf16 two-shard checkpoint (:mod:`bench._bigckpt`) in a
  fresh process (:mod:`bench._bigrun`), with its peak RSS over the interpreter's.
- ``memory``: a real dashboard server (:mod:`dashboard.serve`) and two tabs of headless Chromium: in one, open
  the 262,144 × 640 matrix by path, Health, Projection (PCA of every row, drawn), then a noisy copy of it and
  Compare A vs B; in the other, the Overview of the same matrix. Then the server's RSS once it is idle (steady
  for 3 s), and at its peak.
  Needs Debian's ``chromium`` and Playwright (the ``e2e`` extra); skipped with a message without them.

Run all: ``python -m bench scale``; some: ``python -m bench.bench_scale query analogy`` or
``EMBEDSCOPE_BENCH_SCALE_PARTS=audit,memory python -m bench scale``. ``EMBEDSCOPE_BENCH_SCALE_SMALL=1`` shrinks
every fixture (a check that the code runs end to end, not a measure); ``EMBEDSCOPE_BENCH_SCALE_VOCAB``,
``_WORDS`` and ``_CKPT`` set one fixture's size as ``ROWSxDIM``; ``EMBEDSCOPE_BENCH_SCALE_GENSIM_EVERY=N`` times
gensim's analogies on every N-th question (default 10; 1 for all, which takes many minutes at full size).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import core
from bench import _bigckpt, _bigvocab
from bench._harness import Result, alternating_best, best_of, proc_status_kib

PARTS = ("query", "analogy", "audit", "memory")
PARTS_ENV = "EMBEDSCOPE_BENCH_SCALE_PARTS"
SMALL_ENV = "EMBEDSCOPE_BENCH_SCALE_SMALL"
#: gensim's analogy baseline answers every N-th question of each section (1: all of them; default 10).
GENSIM_EVERY_ENV = "EMBEDSCOPE_BENCH_SCALE_GENSIM_EVERY"
#: env var → (full size, size under EMBEDSCOPE_BENCH_SCALE_SMALL=1)
SIZES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "EMBEDSCOPE_BENCH_SCALE_VOCAB": ((_bigvocab.ROWS, _bigvocab.DIM), (60_000, 64)),
    "EMBEDSCOPE_BENCH_SCALE_WORDS": ((400_000, 50), (30_000, 50)),
    "EMBEDSCOPE_BENCH_SCALE_CKPT": ((_bigckpt.ROWS, _bigckpt.WIDE_DIM), (4_096, 256)),
}
SEED = 0
QUERIES = ["king", "apple", "paris", "running", "blue"]
#: The longest any one browser step may take (an audit or a compare of 262k rows on a busy machine), in seconds.
STEP_TIMEOUT_S = float(os.environ.get("EMBEDSCOPE_BENCH_SCALE_TIMEOUT", "1800"))
MIB = 2**20


def size(env: str) -> tuple[int, int]:
    """The (rows, dim) of a fixture: ``env`` as ``ROWSxDIM`` if set, else the small or the full size."""
    full, small = SIZES[env]
    given = os.environ.get(env, "").strip()
    if given:
        rows, _, dim = given.lower().partition("x")
        return int(rows), int(dim)
    return small if os.environ.get(SMALL_ENV) == "1" else full


def _gensim(vectors: np.ndarray, keys: Sequence[str]) -> Any:
    from gensim.models import KeyedVectors

    logging.getLogger("gensim").setLevel(logging.WARNING)
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(list(keys), np.asarray(vectors))
    kv.fill_norms()
    return kv


# -- 1. one neighbour query ---------------------------------------------------------------------------------

def query(npy: Path) -> list[Result]:
    from core import search

    vocab = npy.parent / "vocab.txt"
    m = core.load(npy, vocab=vocab)
    plain = core.load(npy, vocab=vocab)  # never prepared: the float32 scan every query of it runs
    rows, dim = m.shape
    device = search.resolve_device()
    words = [w for w in QUERIES if w in m.key_to_index]  # all of them but in a shrunk fixture: other words there
    plain_words = [t for t in m.index_to_key[rows // 2:] if t.isalpha() and t not in words]
    words += plain_words[:: max(1, len(plain_words) // len(QUERIES))][: len(QUERIES) - len(words)]
    t = time.perf_counter()
    search.neighbors(m, words[0], k=10)  # the first query: norms, token kinds, masks
    first = time.perf_counter() - t
    search.neighbors(plain, words[0], k=10)
    import torch  # noqa: F401 - its import (once per process) is not the build's cost

    t = time.perf_counter()
    first_pass = search.prepare_search(m)  # what the Neighbours page starts once per matrix
    t_prepare = time.perf_counter() - t
    kv = _gensim(np.asarray(m.vectors), m.index_to_key)
    kv.most_similar(words[0], topn=10)

    batch = words * 4
    t_one, t_gensim, t_scan = (t / len(batch) for t in alternating_best([
        lambda: [search.neighbors(m, w, k=10) for w in batch],
        lambda: [kv.most_similar(w, topn=10) for w in batch],
        lambda: [search.neighbors(plain, w, k=10) for w in batch]]))
    how = "int8 first pass + exact rescoring" if first_pass else "no int8 first pass here (float32 scan)"
    return [
        Result("scale", f"{rows:,}×{dim}: one neighbour query (k=10) after the first, prepared as the Neighbours "
               "page does", t_one, "gensim most_similar (norms filled)", t_gensim, "≤ 20 ms",
               f"{how}; prepare_search {t_prepare:.2f} s once; first query {first * 1e3:.0f} ms; device: {device}"),
        Result("scale", f"{rows:,}×{dim}: one neighbour query (k=10), float32 scan (never prepared)", t_scan,
               "gensim most_similar (norms filled)", t_gensim, "", f"device: {device}"),
    ]


# -- 2. the analogy set on a 400k-word file ---------------------------------------------------------------

def analogy_words(path: Path) -> list[str]:
    """The distinct lower-cased words of an analogy file, in the order they first occur."""
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith(":"):
            seen.update(dict.fromkeys(w.lower() for w in line.split()))
    return list(seen)


def every_nth_question(path: Path, every: int, out: Path) -> Path:
    """A copy of an analogy file with every ``every``-th question of each section (and every section line)."""
    kept: list[str] = []
    i = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            kept.append(line)
            i = 0
        elif line.strip():
            if i % every == 0:
                kept.append(line)
            i += 1
    out.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


def word_vocabulary(rows: int, first: Sequence[str]) -> list[str]:
    """``rows`` distinct words: ``first``, then wordfreq's commonest English words, then filler tokens."""
    import wordfreq

    out = dict.fromkeys(first)
    for w in wordfreq.top_n_list("en", rows):
        if len(out) >= rows:
            break
        if w and not any(c.isspace() for c in w):
            out.setdefault(w.lower())
    i = 0
    while len(out) < rows:
        out.setdefault(f"filler{i}")
        i += 1
    return list(out)[:rows]


def analogy(folder: Path) -> list[Result]:
    from gensim.test.utils import datapath

    from core import evaluate

    rows, dim = size("EMBEDSCOPE_BENCH_SCALE_WORDS")
    questions = Path(datapath("questions-words.txt"))
    keys = word_vocabulary(rows, analogy_words(questions))
    vectors = np.random.default_rng(SEED).standard_normal((rows, dim), dtype=np.float32)
    kv = _gensim(vectors, keys)
    del vectors
    path = folder / f"words-{rows}x{dim}.w2v"
    kv.save_word2vec_format(str(path), binary=True)
    m = core.load(path, format="word2vec-binary")
    restrict = min(evaluate.RESTRICT_VOCAB, rows)  # gensim's default too; named on both sides

    ours = evaluate.evaluate_analogies(m, questions, restrict_vocab=restrict)  # also loads compiled loops, masks
    t_ours = best_of(lambda: evaluate.evaluate_analogies(m, questions, restrict_vocab=restrict), 2)
    # gensim answers one question at a time (minutes for the whole set here): its per-question time is taken on
    # every EVERY-th question, and both sides answer that subset for the accuracy check.
    every = int(os.environ.get(GENSIM_EVERY_ENV, "10"))
    sample = every_nth_question(questions, every, folder / "questions-sample.txt")
    t = time.perf_counter()
    score, _ = kv.evaluate_word_analogies(str(sample), restrict_vocab=restrict)
    t_gensim = time.perf_counter() - t
    ours_sample = evaluate.evaluate_analogies(m, sample, restrict_vocab=restrict)
    same = ("same accuracy" if score == ours_sample.accuracy
            else f"accuracy differs: {ours_sample.accuracy} vs gensim {score}")

    mini = core.load("demo")
    mini_total = evaluate.evaluate_analogies(mini, questions).total
    t_mini = best_of(lambda: evaluate.evaluate_analogies(mini, questions), 3)
    per_q, per_mini = t_ours / ours.total, t_mini / mini_total
    return [
        Result("scale", f"questions-words.txt on a {rows:,}×{dim} word2vec file, per question ({ours.total:,} "
               f"answered, restrict_vocab={restrict:,})", per_q, "gensim evaluate_word_analogies, per question",
               t_gensim / ours_sample.total, "≤ 2× the MiniLM figure per question",
               f"{per_q / per_mini:.2f}× MiniLM's {per_mini * 1e3:.2f} ms per question; whole set {t_ours:.2f} s; "
               + (f"gensim timed on all {ours_sample.total:,} questions, " if every == 1 else
                f"gensim timed on every {every}th question ({ours_sample.total:,}), ") + f"{same} there "
               f"({ours_sample.accuracy:.4f}, seeded random vectors)"),
        Result("scale", f"questions-words.txt on MiniLM (30522×384), per question ({mini_total:,} answered; the "
               "reference for the row above, same run)", per_mini, "", None, "", f"whole set {t_mini:.2f} s"),
    ]


# -- 3. audit of an 8B-sized bf16 checkpoint ---------------------------------------------------------------

def audit(folder: Path) -> list[Result]:
    rows, dim = size("EMBEDSCOPE_BENCH_SCALE_CKPT")
    ckpt = _bigckpt.build(folder / f"llama-{rows}x{dim}", rows, dim)
    proc = subprocess.run([sys.executable, "-m", "bench._bigrun", str(ckpt), "audit"], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    fp32_mib = rows * dim * 4 / MIB
    peak_mib = (out["peak_kib"] - out["base_kib"]) / 1024
    counts = " · ".join(f"{n} {s}" for s, n in out["summary"].items() if n)
    return [Result("scale", f"{rows:,}×{dim:,} bf16 two-shard checkpoint: full audit (fresh process)",
                   out["seconds"], "", None, "≤ 60 s; peak ≤ 2× the float32 table",
                   f"opened first in {out['open_seconds']:.1f} s (RSS then "
                   f"+{(out['open_rss_kib'] - out['base_kib']) / 1024:,.0f} MiB); peak RSS +{peak_mib:,.0f} MiB over the "
                   f"interpreter with numpy ({out['base_kib'] / 1024:,.0f} MiB) = {peak_mib / fp32_mib:.2f}× the "
                   f"float32 table ({fp32_mib:,.0f} MiB); {counts}")]


# -- 4. the dashboard server's memory, two tabs --------------------------------------------------------------

def _noisy_copy(npy: Path, out: Path, scale: float = 0.01) -> Path:
    """``npy`` plus seeded normal noise of ``scale``, written block by block as another ``.npy``."""
    a = np.load(npy, mmap_mode="r")
    b = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=a.shape)
    rng = np.random.default_rng(SEED + 1)
    step = 1 << 15
    for s in range(0, a.shape[0], step):
        block = a[s:s + step]
        b[s:s + step] = block + scale * rng.standard_normal(block.shape, dtype=np.float32)
    b.flush()
    del b
    return out


#: Whether the sidebar's Matrix selectbox (a combobox whose input holds the chosen title) shows ``name``.
_SIDEBAR_SHOWS = """(name) => {
  const box = document.querySelector('[data-testid="stSidebar"] input[role="combobox"][aria-label="Matrix"]');
  return !!box && box.value === name;
}"""


def _choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label`` (a combobox and its listbox of options)."""
    page.get_by_role("combobox", name=label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def _browser_ready() -> bool:
    import importlib.util
    import shutil

    return shutil.which("chromium") is not None and importlib.util.find_spec("playwright") is not None


def dashboard_session(npy: Path, noisy: Path, timeout_s: float = STEP_TIMEOUT_S) -> dict[str, Any]:
    """The two-tab session on a fresh server; returns each step's seconds, the server's RSS after it (MiB), and
    the server's current and peak RSS at the end (KiB)."""
    from playwright.sync_api import sync_playwright

    from bench._browser_draw import _ALL_DRAWN, _settle, launch, open_matrix, server_env
    from core.projection import BROWSER_MAX_POINTS
    from dashboard import serve

    rows = int(np.load(npy, mmap_mode="r").shape[0])
    dim = int(np.load(npy, mmap_mode="r").shape[1])
    caption = f"{rows:,} tokens × {dim} dimensions"
    vocab = npy.parent / "vocab.txt"
    port = serve.free_port()
    log = npy.parent / "server.log"
    with log.open("wb") as sink:
        proc = serve.start(port, server_env(npy.parent), output=sink)
    url = f"http://127.0.0.1:{port}"
    ms = timeout_s * 1000
    steps: list[tuple[str, float, float]] = []
    step_start = time.perf_counter()

    def done(name: str, page: Any) -> None:
        nonlocal step_start
        _settle(page, ms)
        if page.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"{name}: {page.locator('[data-testid=stException]').first.inner_text()}")
        steps.append((name, time.perf_counter() - step_start, proc_status_kib("VmRSS", proc.pid) / 1024))
        anon, mapped = (proc_status_kib(f, proc.pid) / 1024 for f in ("RssAnon", "RssFile"))
        print(f"#   {name}: {steps[-1][1]:.1f} s, server RSS {steps[-1][2]:,.0f} MiB ({anon:,.0f} anonymous, "
              f"{mapped:,.0f} file-backed)", file=sys.stderr, flush=True)
        step_start = time.perf_counter()

    def go(page: Any, link: str) -> None:
        nonlocal step_start
        step_start = time.perf_counter()
        page.get_by_role("link", name=link).first.click()

    try:
        serve.wait_healthy(url, proc=proc)
        with sync_playwright() as p:
            browser = launch(p)
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            tab = context.new_page()
            try:
                tab.goto(url, timeout=ms)
                _settle(tab, ms)
                done("start (demo Overview)", tab)
                open_matrix(tab, npy, vocab, ms)
                tab.get_by_text(caption, exact=False).first.wait_for(timeout=ms)
                done("open + Overview", tab)
                go(tab, "Health")
                tab.get_by_text(re.compile(r"\d+ pass · \d+ warn · \d+ fail")).first.wait_for(timeout=ms)
                done("Health (audit)", tab)
                go(tab, "Projection")
                if rows > BROWSER_MAX_POINTS:  # every point through WebGL, as for the full-size matrix
                    tab.wait_for_function(_ALL_DRAWN, arg=rows, timeout=ms)
                else:  # a small matrix's map is a Vega-Lite chart
                    tab.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=ms)
                done("Projection (PCA of every row, drawn)", tab)
                go(tab, "Token lookup")  # a light page, so that opening B computes nothing else
                _settle(tab, ms)
                step_start = time.perf_counter()
                open_matrix(tab, noisy, vocab, ms)
                tab.wait_for_function(_SIDEBAR_SHOWS, arg=noisy.name, timeout=ms)
                done("open B (noisy copy)", tab)
                go(tab, "Compare")
                tab.get_by_text("A (before)", exact=True).first.wait_for(timeout=ms)
                _choose(tab, "A (before)", npy.name)  # its default is the demo, which it starts comparing
                tab.get_by_text("Joint projection", exact=True).first.wait_for(timeout=ms)  # same width only
                tab.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=ms)
                done("Compare A vs B (tables)", tab)
                second = context.new_page()
                step_start = time.perf_counter()
                second.goto(url, timeout=ms)
                _settle(second, ms)
                open_matrix(second, npy, vocab, ms)
                second.get_by_text(caption, exact=False).first.wait_for(timeout=ms)
                done("second tab: open + Overview", second)
                current, highest, settle_s = _idle_rss(proc.pid, second)
                peak = proc_status_kib("VmHWM", proc.pid)
            except Exception:
                if os.environ.get("EMBEDSCOPE_SHOT"):
                    tab.screenshot(path=os.environ["EMBEDSCOPE_SHOT"], full_page=True)
                raise
            browser.close()
    except Exception as err:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the dashboard session failed after {[s[0] for s in steps]}: {err}\n"
                           f"server log (end):\n{tail}") from err
    finally:
        serve.stop(proc)
    return {"steps": steps, "rss_kib": current, "peak_kib": peak, "rows": rows, "dim": dim,
            "settle_max_kib": highest, "settle_s": settle_s}


#: The server is idle once its RSS stays within this many KiB for IDLE_SAMPLES one-second samples in a row.
IDLE_KIB = 4 * 1024
IDLE_SAMPLES = 3


def _idle_rss(pid: int, page: Any, limit_s: int = 60) -> tuple[int, int, int]:
    """The server's RSS once it is idle (a page may still compute after the browser shows it, e.g. statistics a
    first tab left unfinished): (RSS then, the highest RSS while waiting, seconds waited), all in KiB and s."""
    samples = [proc_status_kib("VmRSS", pid)]
    for waited in range(1, limit_s + 1):
        page.wait_for_timeout(1000)
        samples.append(proc_status_kib("VmRSS", pid))
        last = samples[-IDLE_SAMPLES:]
        if len(last) == IDLE_SAMPLES and max(last) - min(last) <= IDLE_KIB:
            return samples[-1], max(samples), waited
    return samples[-1], max(samples), limit_s


def memory(npy: Path) -> list[Result]:
    if not _browser_ready():
        print("bench_scale memory: skipped, it needs Debian's chromium and Playwright (the e2e extra)",
              file=sys.stderr)
        return []
    noisy = _noisy_copy(npy, npy.parent / "noisy.npy")
    out = dashboard_session(npy, noisy)
    table_mib = out["rows"] * out["dim"] * 4 / MIB
    rss, peak = out["rss_kib"] / 1024, out["peak_kib"] / 1024
    total = sum(s[1] for s in out["steps"])
    trail = "; ".join(f"{name} {sec:.1f} s → {mib:,.0f} MiB" for name, sec, mib in out["steps"])
    return [Result("scale", f"dashboard server, {out['rows']:,}×{out['dim']}: open, Health, Projection, a noisy "
                   "copy opened and compared, Overview in a second tab (headless Chromium; time of the session)",
                   total, "", None, "server RSS ≤ 3× the float32 table",
                   f"server RSS once idle {rss:,.0f} MiB = {rss / table_mib:.2f}× the float32 table ({table_mib:,.0f} "
                   f"MiB; {out['settle_s']} s after the last step, up to {out['settle_max_kib'] / 1024:,.0f} MiB "
                   f"meanwhile), peak (VmHWM) {peak:,.0f} MiB = {peak / table_mib:.2f}×; the server started at "
                   f"{out['steps'][0][2]:,.0f} MiB; steps: {trail}; Compare's A is the demo (its default) until the "
                   "bench picks A")]


# -- all of it -------------------------------------------------------------------------------------------------

def chosen_parts(names: Sequence[str] = ()) -> list[str]:
    """The parts named, else those of EMBEDSCOPE_BENCH_SCALE_PARTS, else all of them."""
    given = list(names) or [p.strip() for p in os.environ.get(PARTS_ENV, "").split(",") if p.strip()]
    unknown = sorted(set(given) - set(PARTS))
    if unknown:
        raise SystemExit(f"bench_scale: unknown part(s) {unknown}; choose among {', '.join(PARTS)}")
    return [p for p in PARTS if p in given] if given else list(PARTS)


def run(names: Sequence[str] = ()) -> list[Result]:
    parts = chosen_parts(names)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        npy: Path | None = None
        if {"query", "memory"} & set(parts):
            rows, dim = size("EMBEDSCOPE_BENCH_SCALE_VOCAB")
            npy = _bigvocab.build(folder / "gemma-sized", rows, dim)
        for part in parts:
            print(f"# bench_scale {part}", file=sys.stderr, flush=True)
            got: list[Result] = []
            if part == "query" and npy is not None:
                got = query(npy)
            elif part == "analogy":
                got = analogy(folder)
            elif part == "audit":
                got = audit(folder)
            elif part == "memory" and npy is not None:
                got = memory(npy)
            for r in got:  # as each part ends: a later part may take long, or fail
                print(r.row(), file=sys.stderr, flush=True)
            results.extend(got)
    return results


if __name__ == "__main__":
    from bench.__main__ import HEADER

    print("\n".join([HEADER, *(r.row() for r in run(sys.argv[1:]))]))
