"""Fine-tuning past one device: ``torch.distributed`` ranks started by ``torchrun``, and the launcher.

Each rank reads the whole corpus (so every rank trains the same table of corpus rows), then trains on its
own contiguous share of the documents. How ranks agree differs by objective:

- SGNS updates a handful of rows per pair, word2vec-style, straight into the table. DDP would all-reduce a
  dense gradient of the whole table at every step (and the CPU loop has no autograd to hook), so ranks
  instead train locally and, :data:`SYNCS_PER_EPOCH` times per epoch, **add up the changes** every rank
  made to the table since the last sync (one all-reduce of the table's change; local SGD). Plain parameter
  averaging would not do: a row that only one rank's documents touch would keep half of its update.
- The classifier is small and dense: each global batch is split across ranks and the **gradients are
  all-reduced** (summed, each rank's loss already divided by the global batch size) before clipping and the
  optimizer step, which is what DDP does; every rank then holds the same parameters.

Backends: NCCL on CUDA, gloo on CPU (and on CUDA when NCCL is missing, with a warning). Rank 0 writes the
run folder after a final barrier, so a rank that dies leaves no output. :func:`launch` starts ``torchrun``
(``python -m torch.distributed.run``) for ``embedscope finetune --nproc N`` and the page, relays rank 0's
progress, stops every rank on cancel, and names the rank that failed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import Cancelled, EmbedscopeError, ParameterError
from core.finetune.devices import Device, choose_device
from core.progress import CancelFn, ProgressFn

#: SGNS table averages per epoch across ranks (the last one ends the epoch).
SYNCS_PER_EPOCH = 4
#: Set by :func:`launch` for its workers: a folder for per-rank status files and the result.
STATUS_ENV = "EMBEDSCOPE_DIST_STATUS"
#: Set by :func:`launch`: rank 0 prints progress as :data:`PROGRESS_PREFIX` lines on stdout.
PROGRESS_ENV = "EMBEDSCOPE_DIST_PROGRESS"
PROGRESS_PREFIX = "@@embedscope-progress "
#: Fault injection for tests: "RANK:kill" makes that rank kill itself (SIGKILL, as the OOM killer would)
#: at its first table sync.
FAULT_ENV = "EMBEDSCOPE_DIST_FAULT"


class RankFailed(EmbedscopeError):
    """A rank of a distributed run failed; the run stopped on every rank and nothing was written."""

    def __init__(self, message: str, rank: int | None) -> None:
        super().__init__(message)
        self.rank = rank


@dataclass(frozen=True)
class Dist:
    """This process's place in a distributed run (world size 1: no process group, every call a no-op).

    Attributes:
        rank, world_size, local_rank: as torchrun sets them.
        backend: "nccl", "gloo", or "none" for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def average_(self, t: torch.Tensor) -> None:
        """Replace ``t`` in place by its mean over ranks."""
        if self.active:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
            t.div_(self.world_size)

    def sum_(self, t: torch.Tensor) -> None:
        """Replace ``t`` in place by its sum over ranks."""
        if self.active:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)

    def gather(self, values: Sequence[float], device: torch.device) -> list[list[float]]:
        """Every rank's ``values`` (same length on each), by rank."""
        local = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        if not self.active:
            return [local.tolist()]
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, local)
        return [t.cpu().tolist() for t in out]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def fault_point(self) -> None:
        """Tests only: die here when :data:`FAULT_ENV` names this rank."""
        spec = os.environ.get(FAULT_ENV, "")
        if self.active and spec == f"{self.rank}:kill":
            os.kill(os.getpid(), signal.SIGKILL)

    def to_json(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend}


SINGLE = Dist()


def backend_for(device: Device) -> str:
    """NCCL for CUDA devices when this torch has it; gloo otherwise (with a warning on CUDA)."""
    if device.kind != "cuda":
        return "gloo"
    if torch.distributed.is_nccl_available():
        return "nccl"
    warnings.warn("NCCL is not available in this torch build; the ranks talk over gloo (slower on GPUs)",
                  RuntimeWarning, stacklevel=2)
    return "gloo"


def init_from_env(prefer: str = "auto") -> tuple[Dist, Device]:
    """Join the process group torchrun describes in the environment (or run alone without one).

    Returns:
        this rank's :class:`Dist` and the device it computes on (``cuda:LOCAL_RANK`` on GPUs).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = choose_device(prefer, local_rank=local if world > 1 else None)
    if world <= 1:
        return SINGLE, device
    if not torch.distributed.is_available():
        raise ParameterError("this torch build has no torch.distributed; run with one process (no --nproc)")
    backend = backend_for(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(), local, backend), device


def shutdown(d: Dist) -> None:
    if d.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def shard_bounds(doc: np.ndarray, n_docs: int, world: int) -> list[tuple[int, int]]:
    """Token ranges, one per rank, of whole documents with about equal token counts.

    Args:
        doc: the document number of every token (non-decreasing).
        n_docs: how many documents hold at least one token.
        world: the number of ranks.

    Raises:
        ParameterError: fewer documents than ranks (naming both sizes).
    """
    if n_docs < world:
        raise ParameterError(f"corpus: {n_docs} document(s) with trained tokens for {world} processes; each "
                             f"process needs at least one document: use --nproc {max(1, n_docs)} or fewer, or "
                             "a larger corpus")
    n = int(doc.shape[0])
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]]) if n else np.zeros(0, np.int64)
    cuts = [0]
    for r in range(1, world):
        j = int(np.searchsorted(starts, n * r / world))
        j = min(max(j, r), len(starts) - (world - r))  # at least one document on each side
        cuts.append(int(starts[j]))
    cuts.append(n)
    return list(itertools.pairwise(cuts))


# -- the launcher ---------------------------------------------------------------------------------
def max_processes(prefer: str = "auto") -> tuple[int, str]:
    """How many ranks this machine can run, and what bounds it ("2 CUDA devices", "4 CPU cores")."""
    device = choose_device(prefer)
    if device.kind == "cuda":
        n = torch.cuda.device_count()
        return n, f"{n} CUDA device{'s' if n != 1 else ''}"
    if device.kind == "mps":
        return 1, "one Apple MPS device"
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return n, f"{n} CPU core{'s' if n != 1 else ''}"


def offered_processes(device_kind: str, devices: int, cpu_cores: int) -> int:
    """How many processes a UI should offer: one per device when there are several GPUs, one per core
    when a CPU has at least 4 (with fewer, other work on the machine eats the gain); 1 means "do not ask".
    """
    if device_kind == "cuda":
        return devices if devices > 1 else 1
    if device_kind == "cpu":
        return cpu_cores if cpu_cores >= 4 else 1
    return 1


def processes_offered(prefer: str = "auto") -> int:
    """:func:`offered_processes` for this machine."""
    most, _ = max_processes(prefer)
    kind = choose_device(prefer).kind
    return offered_processes(kind, most if kind == "cuda" else 1, most if kind == "cpu" else 0)


def check_nproc(nproc: int, prefer: str = "auto") -> None:
    """Refuse a process count this machine cannot run (naming what it has).

    Raises:
        ParameterError: ``nproc`` below 1 or above the devices (cores on a CPU).
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ParameterError(f"--nproc {nproc!r}: must be a whole number, at least 1")
    most, what = max_processes(prefer)
    if nproc > most:
        raise ParameterError(f"--nproc {nproc}: this machine has {what}; use --nproc {most} or fewer (for more, "
                             "run torchrun on several machines: see the README)")


def _tail(buf: list[str], limit: int = 200) -> None:
    del buf[:-limit]


def _read_lines(stream: Any, sink: list[str], progress: ProgressFn | None) -> None:
    for line in stream:
        if line.startswith(PROGRESS_PREFIX):
            if progress is not None:
                try:
                    msg = json.loads(line[len(PROGRESS_PREFIX):])
                    progress(float(msg["fraction"]), str(msg["message"]))
                except (ValueError, KeyError, TypeError):
                    pass
            continue
        sink.append(line)
        _tail(sink)


def _root_cause(stderr: list[str]) -> tuple[int, int] | None:
    """(rank, exit code) of torchrun's "Root Cause (first observed failure)", if it printed one."""
    text = "".join(stderr)
    at = text.rfind("Root Cause")
    m = re.search(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", text[at:] if at >= 0 else text, re.S)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _failure(status: Path, stderr: list[str], nproc: int, code: int) -> EmbedscopeError:
    """The error that explains a failed run: bad input a rank found, a rank killed by a signal (torchrun's
    root cause: its peers' errors are only consequences), a rank's own error, else torchrun's summary."""
    reports = []
    for f in sorted(status.glob("rank-*.json")):
        try:
            reports.append(json.loads(f.read_text(encoding="utf-8")))
        except ValueError:
            continue
    reports.sort(key=lambda r: int(r.get("rank", 0)))
    for r in reports:
        if r.get("bad_input"):
            return ParameterError(str(r.get("message")))
    root = _root_cause(stderr)
    if root is not None and (root[1] < 0 or not reports):
        rank, exit_code = root
        if exit_code < 0 and -exit_code in signal.Signals._value2member_map_:
            how = (f"was killed by signal {-exit_code} ({signal.Signals(-exit_code).name}"
                   + ("; the out-of-memory killer sends it" if exit_code == -signal.SIGKILL else "") + ")")
        else:
            how = f"ended with exit code {exit_code}"
        return RankFailed(f"rank {rank} of {nproc} {how}; the run stopped on every rank and nothing was written",
                          rank)
    if reports:
        r = reports[0]
        return RankFailed(f"rank {r['rank']} of {nproc} failed: {r.get('type')}: {r.get('message')}; the run "
                          "stopped on every rank and nothing was written", int(r["rank"]))
    last = "".join(stderr[-5:]).strip()
    return RankFailed(f"the distributed run ended with exit code {code} and no rank reported why; nothing was "
                      f"written. Last output: {last[-500:]}", None)


def launch(source: str, data: str | os.PathLike[str], config: Any, out: str | os.PathLike[str], nproc: int, *,
           tensor: str | None = None, vocab: str | None = None, limit: int | None = None, force: bool = False,
           progress: ProgressFn | None = None, cancel: CancelFn | None = None,
           env: dict[str, str] | None = None) -> Path:
    """Run a fine-tune on ``nproc`` local ranks through torchrun; returns the run folder rank 0 wrote.

    Args:
        source, tensor, vocab, limit: how the ranks open the matrix (as ``embedscope finetune`` does).
        data: the corpus or labelled file. config: an SGNS or classifier config. out: the NEW run folder.
        progress, cancel: rank 0's progress is relayed; cancel stops every rank (no folder is written).
        env: extra environment for the ranks.

    Raises:
        ParameterError: a bad ``nproc`` or bad input found by the ranks; RankFailed: a rank died or failed;
        Cancelled: through ``cancel``.
    """
    check_nproc(nproc, config.device)
    with tempfile.TemporaryDirectory(prefix="embedscope-dist-") as tmp:
        status = Path(tmp)
        (status / "config.json").write_text(json.dumps(config.to_json()), encoding="utf-8")
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
                "-m", "core.finetune", source, "--corpus", str(data), "--objective", config.objective,
                "--config-json", str(status / "config.json"), "--out", str(out)]
        for flag, value in (("--tensor", tensor), ("--vocab", vocab), ("--limit", limit)):
            if value is not None:
                argv += [flag, str(value)]
        if force:
            argv.append("--force")
        run_env = {**os.environ, **(env or {}), STATUS_ENV: str(status), PROGRESS_ENV: "1",
                   "OMP_NUM_THREADS": str(max(1, int(getattr(config, "threads", 1)) or 1))}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
                                start_new_session=True)
        stdout: list[str] = []
        stderr: list[str] = []
        readers = [threading.Thread(target=_read_lines, args=(proc.stdout, stdout, progress), daemon=True),
                   threading.Thread(target=_read_lines, args=(proc.stderr, stderr, None), daemon=True)]
        for t in readers:
            t.start()
        try:
            while proc.poll() is None:
                if cancel is not None and cancel():
                    _stop(proc)
                    raise Cancelled("fine-tuning was cancelled; every rank stopped and nothing was written")
                time.sleep(0.1)
        except BaseException:
            _stop(proc)
            raise
        for t in readers:
            t.join(timeout=5)
        result = status / "result.json"
        if proc.returncode == 0 and result.is_file():
            return Path(json.loads(result.read_text(encoding="utf-8"))["out"])
        raise _failure(status, stderr, nproc, int(proc.returncode or 0))


def _stop(proc: subprocess.Popen[str]) -> None:
    """End torchrun and every rank (its session), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def report_failure(d: Dist, err: BaseException) -> None:
    """A worker's failure, for :func:`launch` (a status file) and for a person (one line on stderr)."""
    from core.errors import FormatError, OutputExistsError

    bad_input = isinstance(err, (ParameterError, FormatError, OutputExistsError))
    folder = os.environ.get(STATUS_ENV)
    if folder:
        Path(folder, f"rank-{d.rank}.json").write_text(json.dumps(
            {"rank": d.rank, "type": type(err).__name__, "message": str(err), "bad_input": bad_input}),
            encoding="utf-8")
    sys.stderr.write(f"embedscope: error: rank {d.rank}: {err}\n")


def progress_line(fraction: float, message: str) -> None:
    """Rank 0's progress for :func:`launch`: one prefixed JSON line on stdout."""
    sys.stdout.write(PROGRESS_PREFIX + json.dumps({"fraction": fraction, "message": message}) + "\n")
    sys.stdout.flush()


def write_result(out: Path) -> None:
    folder = os.environ.get(STATUS_ENV)
    if folder:
        Path(folder, "result.json").write_text(json.dumps({"out": str(out)}), encoding="utf-8")


__all__ = ["FAULT_ENV", "SINGLE", "SYNCS_PER_EPOCH", "Dist", "RankFailed", "backend_for", "check_nproc",
           "init_from_env", "launch", "max_processes", "offered_processes", "processes_offered", "shard_bounds"]
