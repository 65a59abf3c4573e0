"""The one place that chooses where fine-tuning runs: CUDA, then Apple MPS, then the CPU.

Nothing else in Embedscope names a device; objectives ask :func:`choose_device` and use what it returns.
On CUDA the heavy products run under bfloat16 autocast; parameters and updates stay float32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from core.errors import ParameterError

#: Values accepted by ``device=`` in the fine-tuning configs.
DevicePreference = Literal["auto", "cuda", "mps", "cpu"]
DEVICE_CHOICES: tuple[DevicePreference, ...] = get_args(DevicePreference)


@dataclass(frozen=True)
class Device:
    """Where a run computes.

    Attributes:
        torch_device: the torch device.
        name: what the run card and the UI show ("cuda:0 (NVIDIA H100 80GB HBM3)", "mps", "cpu").
        autocast_dtype: the autocast dtype (bfloat16 on CUDA), or None for plain float32.
    """

    torch_device: torch.device
    name: str
    autocast_dtype: torch.dtype | None = None

    @property
    def kind(self) -> str:
        """"cuda", "mps" or "cpu"."""
        return self.torch_device.type

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bfloat16 autocast on CUDA; nothing elsewhere."""
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(device_type=self.torch_device.type, dtype=self.autocast_dtype):
            yield

    def generator(self, seed: int) -> torch.Generator:
        """A seeded random generator living on this device."""
        g = torch.Generator(device=self.torch_device)
        g.manual_seed(int(seed))
        return g


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def choose_device(prefer: str = "auto", local_rank: int | None = None) -> Device:
    """The device to run on: CUDA when present, then MPS, then the CPU.

    Args:
        prefer: "auto" (the order above), or "cuda"/"mps"/"cpu" to insist on one.
        local_rank: in a distributed run, this rank's index on its machine: CUDA rank ``i`` takes GPU ``i``.

    Raises:
        ParameterError: ``prefer`` is not one of :data:`DEVICE_CHOICES`, or names a device this machine lacks.
    """
    if prefer not in DEVICE_CHOICES:
        raise ParameterError(f"device={prefer!r}: must be one of {', '.join(DEVICE_CHOICES)}")
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank is not None:
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", torch.cuda.current_device())
        name = f"{dev} ({torch.cuda.get_device_name(dev)})"
        bf16 = torch.cuda.is_bf16_supported()
        return Device(dev, name, torch.bfloat16 if bf16 else None)
    if prefer == "cuda":
        raise ParameterError("device='cuda': no CUDA device is available here; use device='auto' or 'cpu'")
    if prefer in ("auto", "mps") and _mps_available():
        return Device(torch.device("mps"), "mps")
    if prefer == "mps":
        raise ParameterError("device='mps': Apple MPS is not available here; use device='auto' or 'cpu'")
    return Device(torch.device("cpu"), "cpu")


__all__ = ["DEVICE_CHOICES", "Device", "DevicePreference", "choose_device"]
