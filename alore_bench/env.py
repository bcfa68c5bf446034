"""Seeding and the environment facts every record carries."""

from __future__ import annotations

import platform
import random
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from ._version import __version__


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA). Data order is seeded separately per epoch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(choice: str) -> torch.device:
    from .devices import device_name

    return torch.device(device_name(choice))


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    """The commit of the alore-bench checkout, when it runs from one."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def distribution_version(name: str) -> Optional[str]:
    """An installed distribution's version from its metadata: importing peft only to read its
    __version__ cost every job about 1.7 s (benchmarks/job_overhead.py)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment(device: torch.device) -> Dict[str, Any]:
    info: Dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": distribution_version("timm"),
        "peft": distribution_version("peft"),
        "numpy": np.__version__,
        "alore_bench": __version__,
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
