"""Fine-tuning on several processes (torch.distributed over gloo on this CPU; NCCL under ``gpu``).

The oracle for a distributed run is the single-process run of the same settings: the losses per epoch
agree within a stated tolerance, and the corpus tokens' nearest neighbours (computed here with numpy, over
the whole written matrix) agree as well as two single-process runs with different seeds do.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core import finetune as ft
from core.errors import Cancelled, ParameterError
from core.finetune import distributed
from core.finetune.devices import Device
from core.finetune.distributed import Dist, RankFailed

# Loss per epoch: the 2-process mean within 3% of the 1-process loss (ranks see different pairs and
# negatives, and sum their table changes 4 times an epoch instead of after every pair).
LOSS_RTOL = 0.03
JACCARD_MIN = 0.9
SGNS = ft.SGNSConfig(epochs=3, lr=0.0025, min_lr=0.0001, seed=0, watch_size=0)


@pytest.fixture(scope="module")
def demo() -> core.EmbeddingMatrix:
    return core.load("demo")


def _weights(folder: Path) -> np.ndarray:
    from safetensors.numpy import load_file

    return next(iter(load_file(str(folder / "model.safetensors")).values()))


def _neighbors(x: np.ndarray, rows: np.ndarray, k: int = 10) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = u[rows] @ u.T
    s[np.arange(rows.shape[0]), rows] = -np.inf
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def _jaccard(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> float:
    na, nb = _neighbors(a, rows), _neighbors(b, rows)
    return float(np.mean([len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(na, nb, strict=True)]))


@pytest.fixture(scope="module")
def sgns_pair(demo: core.EmbeddingMatrix, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ft.Run]:
    root = tmp_path_factory.mktemp("dist")
    one = ft.finetune(demo, ft.demo_corpus(), SGNS, root / "one")
    two = ft.load_run(distributed.launch("demo", ft.demo_corpus(), SGNS, root / "two", 2))
    return {"one": one, "two": two}


def test_two_processes_match_one_sgns(sgns_pair: dict[str, ft.Run], demo: core.EmbeddingMatrix) -> None:
    one, two = sgns_pair["one"], sgns_pair["two"]
    l1 = [e["loss"] for e in one.card["epochs"]]
    l2 = [e["loss"] for e in two.card["epochs"]]
    assert len(l1) == len(l2) == SGNS.epochs
    assert np.allclose(l2, l1, rtol=LOSS_RTOL), (l1, l2)
    assert l2[-1] < l2[0]
    rows = np.unique(ft.load_corpus(demo, ft.demo_corpus()).ids)
    start = np.asarray(demo.vectors, dtype=np.float32)
    a, b = _weights(one.path), _weights(two.path)
    agree = _jaccard(a, b, rows)
    moved = _jaccard(a, start, rows)
    other_seed = ft.train_sgns(demo, ft.load_corpus(demo, ft.demo_corpus()),
                               ft.SGNSConfig(**{**SGNS.to_json(), "seed": 1}))
    seeds = _jaccard(a, other_seed.apply(demo), rows)
    assert agree >= JACCARD_MIN, (agree, seeds, moved)
    assert agree > moved  # training moved the neighbourhoods more than the runs differ
    assert agree >= seeds - 0.03  # as close to one process as another seed is
    outside = np.setdiff1d(np.arange(len(demo)), rows)
    assert np.array_equal(b[outside].view(np.uint32), start[outside].view(np.uint32))


def test_run_card_records_ranks(sgns_pair: dict[str, ft.Run]) -> None:
    d = sgns_pair["two"].card["distributed"]
    assert d["world_size"] == 2 and d["backend"] == "gloo" and d["sync"] == "summed row changes"
    assert [r["rank"] for r in d["ranks"]] == [0, 1]
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 for r in d["ranks"])
    assert sgns_pair["two"].card["tokens_seen"] == sum(r["tokens"] for r in d["ranks"])
    assert sgns_pair["one"].card["distributed"]["world_size"] == 1
    assert sorted(p.name for p in sgns_pair["two"].path.iterdir()) == sorted(
        sgns_pair["two"].card["output"]["files"])


@pytest.mark.slow
def test_two_processes_match_one_classifier(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    config = ft.ClassifyConfig(epochs=3, freeze_epochs=1, patience=3, seed=2, watch_size=0)
    one = ft.finetune(demo, ft.demo_labels(), config, tmp_path / "one")
    two = ft.load_run(distributed.launch("demo", ft.demo_labels(), config, tmp_path / "two", 2))
    # the gradient all-reduce makes each step the single process's step, up to float summation order
    l1 = [e["val_loss"] for e in one.card["epochs"]]
    l2 = [e["val_loss"] for e in two.card["epochs"]]
    assert np.allclose(l1, l2, rtol=1e-3), (l1, l2)
    assert np.allclose(_weights(one.path), _weights(two.path), atol=1e-4)
    assert two.card["distributed"]["sync"] == "gradient all-reduce"


def test_a_rank_that_dies_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RankFailed, match=r"rank 1 of 2 was killed by signal 9 .*nothing was written") as err:
        distributed.launch("demo", ft.demo_corpus(), SGNS, out, 2, env={distributed.FAULT_ENV: "1:kill"})
    assert err.value.rank == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cancel_stops_every_rank(tmp_path: Path) -> None:
    seen: list[float] = []
    out = tmp_path / "run"
    with pytest.raises(Cancelled, match="every rank stopped"):
        distributed.launch("demo", ft.demo_corpus(), ft.SGNSConfig(epochs=200, watch_size=0), out, 2,
                           progress=lambda f, msg: seen.append(f), cancel=lambda: bool(seen))
    assert seen and max(seen) < 0.5  # stopped at its first report, far from the end of 200 epochs
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_nproc_beyond_this_machine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    most, what = distributed.max_processes("cpu")
    with pytest.raises(ParameterError, match=rf"--nproc {most + 1}: this machine has {what}; use --nproc {most}"):
        distributed.check_nproc(most + 1, "cpu")
    with pytest.raises(ParameterError, match="at least 1"):
        distributed.check_nproc(0, "cpu")
    assert main(["finetune", "demo", "--corpus", "demo", "--device", "cpu", "--nproc", str(most + 1)]) == 2
    assert f"--nproc {most + 1}" in capsys.readouterr().err


def test_corpus_smaller_than_ranks_is_refused_with_sizes(demo: core.EmbeddingMatrix) -> None:
    corpus = ft.tokenize(demo, ["river bank loan", "guitar band stage"])
    # the refusal comes before any collective call, so no process group is needed
    with pytest.raises(ParameterError, match=r"corpus: 2 document\(s\) with trained tokens for 3 processes"):
        ft.train_sgns(demo, corpus, ft.SGNSConfig(epochs=1, watch_size=0), dist=Dist(0, 3, 0, "gloo"))


def test_shards_are_whole_documents_of_about_equal_size() -> None:
    doc = np.repeat(np.arange(10), [5, 1, 7, 3, 3, 9, 2, 2, 4, 4])
    bounds = distributed.shard_bounds(doc, 10, 3)
    assert bounds[0][0] == 0 and bounds[-1][1] == doc.shape[0]
    assert all(a < b for a, b in bounds) and all(b == c for (_, b), (c, _) in itertools.pairwise(bounds))
    assert all(a == 0 or doc[a] != doc[a - 1] for a, _ in bounds)  # never inside a document
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 9
    assert distributed.shard_bounds(np.array([0, 1]), 2, 2) == [(0, 1), (1, 2)]


def test_backend_is_gloo_on_cpu_and_falls_back_when_nccl_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributed.backend_for(Device(torch.device("cpu"), "cpu")) == "gloo"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="NCCL is not available"):
        assert distributed.backend_for(Device(torch.device("cuda", 0), "cuda:0")) == "gloo"
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: True)
    assert distributed.backend_for(Device(torch.device("cuda", 0), "cuda:0")) == "nccl"


@pytest.mark.slow
def test_torchrun_module_entry_point_prints_the_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "core.finetune", "demo", "--corpus", "demo", "--epochs", "1", "--out", str(out),
                           "--json"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(proc.stdout.strip().splitlines()[-1])
    assert payload["distributed"]["world_size"] == 2 and Path(payload["out"]) == out
    assert ft.load_run(out).card["distributed"]["backend"] == "gloo"


@pytest.mark.gpu
def test_cuda_ranks_use_nccl_and_autocast(demo: core.EmbeddingMatrix, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    n = min(2, torch.cuda.device_count())
    run = ft.load_run(distributed.launch("demo", ft.demo_corpus(), ft.SGNSConfig(epochs=2, watch_size=0),
                                         tmp_path / "run", n))
    assert run.card["device"].startswith("cuda")
    assert run.card["autocast"] == ("bfloat16" if torch.cuda.is_bf16_supported() else None)
    assert run.card["distributed"]["world_size"] == n
    if n > 1:
        assert run.card["distributed"]["backend"] == ("nccl" if torch.distributed.is_nccl_available() else "gloo")
    assert run.card["epochs"][-1]["loss"] < run.card["epochs"][0]["loss"]


def test_cli_offers_nproc_and_the_module_takes_the_same_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main
    from core.cli._cmd_finetune import worker_main

    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "--nproc N" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        worker_main(["--help"])
    shown = capsys.readouterr().out
    assert "python -m core.finetune" in shown and "--corpus" in shown and "--nproc" not in shown
