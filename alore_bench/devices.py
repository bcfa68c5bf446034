"""`--device` resolved to a device name (cpu, cuda, cuda:N) without importing torch where the answer
is known without it: `cpu` always, and `auto` on a Linux machine with no GPU device node (torch
could not see a GPU there either). Only a machine that may have a GPU asks torch."""

from __future__ import annotations

import glob
import sys

from .errors import UserError, param

# Device nodes of the drivers torch's CUDA (NVIDIA), ROCm (AMD, also `cuda` in torch) and WSL's GPU use.
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/kfd", "/dev/dxg")


def may_have_gpu() -> bool:
    if not sys.platform.startswith("linux"):
        return True  # no cheap check elsewhere: torch decides
    return any(glob.glob(pattern) for pattern in GPU_NODES)


def device_name(choice: str) -> str:
    """The device a `--device` value means here; a one-line error for a bad or unavailable one."""
    kind, _sep, index = choice.partition(":")
    if choice != "auto" and (kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit()))):
        raise UserError(f"{param('device', choice)}: choose auto, cpu, cuda or cuda:N")
    if kind == "cpu" or (choice == "auto" and not may_have_gpu()):
        return "cpu"
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise UserError(f"{param('device', choice)}: no CUDA device is available here; use {param('device', 'cpu')} or "
                        f"{param('device', 'auto')}")
    if index and int(index) >= torch.cuda.device_count():
        raise UserError(f"{param('device', choice)}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return choice
