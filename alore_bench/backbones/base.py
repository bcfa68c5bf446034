"""Backbone registry: architecture, input pipeline facts and where the pretrained weights come from."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ..registry import Registry


@dataclass(frozen=True)
class WeightSource:
    """Resolved pretrained weights: what was loaded, from where, with a content checksum."""

    kind: str  # "npz", "safetensors", "timm-hub", "package"
    location: str  # a file path or a timm tag
    sha256: Optional[str] = None

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "location": self.location, "sha256": self.sha256}


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    summary: str
    family: str
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    # Builds the architecture with a fresh head of `num_classes` (0 = no head).
    build: Callable[..., nn.Module]
    # Finds the weights from the --weights value and the data dir; raises UserError with a fix.
    resolve_weights: Callable[[Optional[str], Path], WeightSource]
    # Loads resolved weights into a built model (the head is left as built).
    load_weights: Callable[[nn.Module, WeightSource], None]
    weight_tag: str = ""
    # Convolution-heavy families run faster with NHWC memory on CUDA (model and batches).
    channels_last: bool = False
    # The name tables print (reports: `--name` overrides it).
    display: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        return self.display or self.name

    def create(self, num_classes: int, drop_path: float = 0.0, device: str | torch.device = "cpu") -> nn.Module:
        with torch.device(device):
            return self.build(num_classes=num_classes, drop_path=drop_path)


BACKBONES: Registry[BackboneSpec] = Registry("backbone", "--backbone")


def file_sha256(path: Path) -> str:
    """The file's sha256, hashed once per process while its size and mtime stay the same (every
    job of a study resolves the same weights file)."""
    stat = Path(path).stat()
    return _sha256_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    """Load backbone weights; only the classifier head may be absent. Anything else is an error."""
    # The head is always new: drop any pretraining head before loading.
    backbone_state = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(backbone_state, strict=False)
    missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise ValueError(f"{origin}: weights do not fit the architecture "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
