"""Parameter budgets computed without weights: the model is built on the meta device, once per
version of the code (a small JSON cache), so `alore-bench list` does not rebuild ViT-B/16 for every
method each time."""

from __future__ import annotations

from functools import lru_cache

import torch

from .code_cache import read_entries, write_entry
from .errors import UserError
from .methods import METHODS
from .methods.base import trainable_parameter_count


@lru_cache(maxsize=None)
def trainable_without_head(method: str, backbone: str = "vit_b16") -> int | str:
    """Trainable parameters of `method` (default options) on `backbone` with no classifier head,
    from the cache when this code computed it before; a string (the one-line reason) where the
    method does not apply to that backbone's family."""
    key = method if backbone == "vit_b16" else f"{backbone}/{method}"
    cached = read_entries()
    if key in cached:
        return cached[key]
    try:
        count: int | str = build_and_count(method, backbone)
    except UserError as error:
        count = f"n/a: {error.template}"  # fields rendered by whoever shows it
    write_entry(key, count)
    return count


def vit_b16_trainable_without_head(method: str) -> int:
    count = trainable_without_head(method, "vit_b16")
    if isinstance(count, str):
        raise UserError(f"method {method} on vit_b16: {count}")
    return count


def build_and_count(method: str, backbone: str = "vit_b16", config=None) -> int:
    """The budget from the built model (on the meta device: no memory, no weights); `config`: the
    method's (default: its defaults)."""
    from .backbones import BACKBONES

    spec = METHODS.get(method)
    model = BACKBONES.get(backbone).create(num_classes=0, device="meta")
    with torch.device("meta"):
        model = spec.apply(model, spec.default_config() if config is None else config)
    return trainable_parameter_count(model)


def backbone_size(backbone: str) -> int:
    """All parameters of the backbone without a head (built on the meta device; cached like budgets)."""
    from .backbones import BACKBONES

    key = f"size/{backbone}"
    cached = read_entries()
    if key in cached:
        return int(cached[key])
    model = BACKBONES.get(backbone).create(num_classes=0, device="meta")
    size = sum(p.numel() for p in model.parameters())
    write_entry(key, size)
    return size


def mean_head_parameters(suite: str, width: int = 768) -> float:
    """The mean size of a new linear head (width x classes + classes) over a suite's tasks."""
    from .data.suites import SUITES

    tasks = SUITES.get(suite).tasks
    return sum(width * t.classes + t.classes for t in tasks) / len(tasks)
