"""Parameter budgets computed without weights: the model is built on the meta device."""

from __future__ import annotations

from functools import lru_cache

import torch

from .methods import METHODS
from .methods.base import trainable_parameter_count


@lru_cache(maxsize=None)
def vit_b16_trainable_without_head(method: str) -> int:
    """Trainable parameters of `method` (default options) on ViT-B/16 with no classifier head."""
    from .backbones import BACKBONES

    spec = METHODS.get(method)
    model = BACKBONES.get("vit_b16").create(num_classes=0, device="meta")
    with torch.device("meta"):
        model = spec.apply(model, spec.default_config())
    return trainable_parameter_count(model)


def mean_head_parameters(suite: str, width: int = 768) -> float:
    """The mean size of a new linear head (width x classes + classes) over a suite's tasks."""
    from .data.suites import SUITES

    tasks = SUITES.get(suite).tasks
    return sum(width * t.classes + t.classes for t in tasks) / len(tasks)
