"""Every CLI command that opens a source, on every format, exits 0 in a fresh process, every time.

Text vector files used to make `info`/`lookup` print their output and then abort at exit ("terminate called
without an active exception", exit 134) about 4 runs in 10: Arrow's threaded CSV reader with torch loaded.
The abort happens as the process ends, so each run is a whole ``python -m core.cli`` process (forking from a
parent that had imported torch did not reproduce the abort: only real processes are a faithful test).

Inputs are written by other tools: gensim (word2vec text and binary; its own GloVe test file), numpy,
safetensors, paddle, and the bundled MiniLM folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

TEXT_FORMATS = ("word2vec-text", "glove")
FORMAT_NAMES = ("huggingface", "safetensors", "npy", "pdparams", "word2vec-text", "word2vec-binary", "glove",
                "projector-tsv", "gguf", "onnx")


def _run_all(runs: list[tuple[list[str], Path]]) -> list[tuple[int, list[str]]]:
    """Each command in its own ``python -m core.cli`` process (a few at a time), output to its log file."""

    def one(run: tuple[list[str], Path]) -> tuple[int, list[str]]:
        argv, log = run
        with log.open("wb") as f:
            res = subprocess.run([sys.executable, "-m", "core.cli", *argv], stdout=f, stderr=subprocess.STDOUT,
                                 timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return res.returncode, argv

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, runs))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, list[str]]]:
    """Format → (SOURCE argument, four tokens in its vocabulary)."""
    from gensim.models import KeyedVectors
    from gensim.test.utils import datapath
    from safetensors.numpy import save_file

    d = tmp_path_factory.mktemp("formats")
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((60, 8)).astype(np.float32)
    words = [f"w{i}" for i in range(60)]
    out: dict[str, tuple[str, list[str]]] = {"huggingface": ("demo", ["king", "man", "woman", "queen"])}
    rows = ["0", "1", "2", "3"]
    (d / "st").mkdir()
    save_file({"model.embed_tokens.weight": vectors}, str(d / "st" / "model.safetensors"))
    out["safetensors"] = (str(d / "st" / "model.safetensors"), rows)
    (d / "npy").mkdir()
    np.save(d / "npy" / "emb.npy", vectors)
    out["npy"] = (str(d / "npy" / "emb.npy"), rows)
    kv = KeyedVectors(8)
    kv.add_vectors(words, vectors)
    kv.save_word2vec_format(str(d / "vectors.txt"))
    kv.save_word2vec_format(str(d / "vectors.bin"), binary=True)
    out["word2vec-text"] = (str(d / "vectors.txt"), words[:4])
    out["word2vec-binary"] = (str(d / "vectors.bin"), words[:4])
    glove = Path(datapath("test_glove.txt"))
    glove_words = [ln.split(" ", 1)[0] for ln in glove.read_text(encoding="utf-8").splitlines()]
    out["glove"] = (str(glove), [w for w in glove_words if w.isalpha()][:4])
    (d / "tsv").mkdir()
    np.savetxt(d / "tsv" / "vectors.tsv", vectors, delimiter="\t")
    (d / "tsv" / "metadata.tsv").write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
    out["projector-tsv"] = (str(d / "tsv"), words[:4])
    import gguf
    from onnx import TensorProto, helper, numpy_helper
    from onnx import save as onnx_save

    w = gguf.GGUFWriter(str(d / "emb.gguf"), "llama")
    w.add_token_list(words)
    w.add_tensor("token_embd.weight", gguf.quantize(np.repeat(vectors, 4, axis=1), gguf.GGMLQuantizationType.Q8_0),
                 raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out["gguf"] = (str(d / "emb.gguf"), words[:4])
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 2])
    hidden = helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 2, 8])
    graph = helper.make_graph([helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"])], "g", [ids],
                              [hidden], [numpy_helper.from_array(vectors, "embed.weight")])
    (d / "onnx").mkdir()
    onnx_save(helper.make_model(graph), str(d / "onnx" / "model.onnx"))
    out["onnx"] = (str(d / "onnx"), rows)
    try:
        import paddle
    except ImportError:
        return out
    paddle.seed(1)
    (d / "paddle").mkdir()
    paddle.save(paddle.nn.Embedding(60, 8).state_dict(), str(d / "paddle" / "emb.pdparams"))
    out["pdparams"] = (str(d / "paddle" / "emb.pdparams"), rows)
    return out


def _commands(source: str, tokens: list[str], out: Path) -> dict[str, list[str]]:
    """Every command that opens a source, with arguments that make it do its work on ``source``."""
    a, b, c, e = tokens
    corpus = out / "corpus.txt"
    corpus.write_text(" ".join(tokens * 6) + "\n", encoding="utf-8")
    return {
        "info": ["info", source, "--json"],
        "lookup": ["lookup", source, a, "--json"],
        "stats": ["stats", source, "--json"],
        "neighbors": ["neighbors", source, a, "-k", "3", "--json"],
        "analogy": ["analogy", source, f"{a} - {b} + {c}", "-k", "3", "--json"],
        "similarity": ["similarity", source, a, b, "--json"],
        "doesnt-match": ["doesnt-match", source, a, b, c, e, "--json"],
        "evaluate": ["evaluate", source, "--analogies", str(_analogies(out, tokens)), "--json"],
        "audit": ["audit", source, "--json", "--fail-on", "fail"],
        "project": ["project", source, "--method", "pca", "--sample", "50", "--out", str(out / "xy.csv"), "--json"],
        "export": ["export", source, "--format", "npy", "--out", str(out / "npy-out"), "--json"],
        "compare": ["compare", source, source, "--allow-same", "--limit", "300", "--top", "3", "--json"],
        "quantize": ["quantize", source, "--formats", "fp16", "--limit", "300", "--json"],
        "finetune": ["finetune", source, "--corpus", str(corpus), "--epochs", "1", "--threads", "1",
                     "--out", str(out / "run"), "--json"],
    }


def _analogies(out: Path, tokens: list[str]) -> Path:
    p = out / "questions.txt"
    p.write_text(": section\n" + " ".join(tokens) + "\n", encoding="utf-8")
    return p


def _grid(sources: dict[str, tuple[str, list[str]]], tmp: Path, formats: tuple[str, ...],
          commands: tuple[str, ...] | None, times: int) -> list[tuple[list[str], Path]]:
    runs = []
    for fmt in formats:
        if fmt not in sources:
            continue
        source, tokens = sources[fmt]
        for i in range(times):
            out = tmp / f"{fmt}-{i}"
            out.mkdir()
            cmds = _commands(source, tokens, out)
            for name in commands or tuple(cmds):
                runs.append((cmds[name], out / f"{name}.log"))
    return runs


def _check(results: list[tuple[int, list[str]]], runs: list[tuple[list[str], Path]]) -> None:
    assert len(results) == len(runs)
    # audit exits 1 when a check fails (random test vectors can fail one): a verdict, not a crash.
    failed = [(code, argv, Path(log).read_text(errors="replace")[-300:])
              for (code, argv), (_, log) in zip(results, runs, strict=True)
              if code != 0 and not (code == 1 and argv[0] == "audit")]
    assert not failed, f"{len(failed)} of {len(runs)} runs failed, first: {failed[:3]}"
    for _argv, log in runs:  # every command printed one JSON object (and nothing after it)
        text = Path(log).read_text(encoding="utf-8")
        json.loads(text[text.index("{"):])


def test_text_formats_exit_0_every_time(sources: dict[str, tuple[str, list[str]]], tmp_path: Path) -> None:
    runs = _grid(sources, tmp_path, TEXT_FORMATS, ("info", "lookup"), 20)
    _check(_run_all(runs), runs)


def test_every_format_opens_in_a_fresh_process(sources: dict[str, tuple[str, list[str]]], tmp_path: Path) -> None:
    runs = _grid(sources, tmp_path, FORMAT_NAMES, ("info", "lookup", "stats"), 1)
    _check(_run_all(runs), runs)


# The whole grid starts torch, numba and UMAP in 140 processes: minutes on 2 cores, so nightly (make test-all).
@pytest.mark.slow
def test_every_command_on_every_format_exits_0(sources: dict[str, tuple[str, list[str]]], tmp_path: Path) -> None:
    runs = _grid(sources, tmp_path, FORMAT_NAMES, None, 1)
    _check(_run_all(runs), runs)


@pytest.mark.slow
def test_every_command_on_every_format_exits_0_twenty_times(sources: dict[str, tuple[str, list[str]]],
                                                            tmp_path: Path) -> None:
    runs = _grid(sources, tmp_path, FORMAT_NAMES, None, 20)
    _check(_run_all(runs), runs)
