"""What a process keeps between jobs because it is the same for every job that asks: the
pretrained backbone state, a task's verified splits, and what a seeded model holds beyond the
pretrained state (its head and buffers). A worker runs many jobs of one backbone and the seeds
of a task in a row, so the last entry of the first two is kept; the third is small and keyed by
the RNG state, so many are."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from itertools import chain
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ..config import stable_hash
from ..data.cache import SplitData, load_split
from ..data.suites import Task

_PRETRAINED: Dict[str, Dict[str, torch.Tensor]] = {}
_SPLITS: Dict[str, Tuple[SplitData, SplitData]] = {}
# RNG-state key -> (the model's tensors the pretrained state does not cover, the RNG state after creation).
_INITIAL: "OrderedDict[str, Tuple[Dict[str, torch.Tensor], torch.Tensor]]" = OrderedDict()
INITIAL_ENTRIES = 256  # a ViT-B/16 entry with a 100-way head is 0.3 MB


def pretrained_state(backbone, source) -> Dict[str, torch.Tensor]:
    """The pretrained backbone's state, loaded once per process; every run copies it into a
    freshly seeded model."""
    key = stable_hash({"backbone": backbone.name, "weights": source.describe()})
    if key not in _PRETRAINED:
        model = backbone.create(num_classes=0)
        backbone.load_weights(model, source)
        _PRETRAINED.clear()
        _PRETRAINED[key] = {k: v.clone() for k, v in model.state_dict().items()}
    return _PRETRAINED[key]


def task_splits(data_dir: Path, task: Task, names: Tuple[str, str],
                fingerprint: Mapping[str, Any]) -> Tuple[SplitData, SplitData]:
    """A task's (train, eval) splits, read and verified once per process while their data stay the
    same (the fingerprint holds their checksums)."""
    key = stable_hash({"data": str(data_dir), "suite": task.suite, "task": task.name, "splits": list(names),
                       "fingerprint": dict(fingerprint)})
    if key not in _SPLITS:
        _SPLITS.clear()
        _SPLITS[key] = (load_split(data_dir, task, names[0]), load_split(data_dir, task, names[1]))
    return _SPLITS[key]


def _tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    return dict(chain(model.named_parameters(), model.named_buffers()))


def seeded_backbone(backbone, num_classes: int, drop_path: float, pretrained: Mapping[str, torch.Tensor],
                    load) -> nn.Module:
    """The backbone as a freshly seeded run builds it: created on the CPU with its random
    initialisation (drawn from torch's RNG as it stands), then `load(model, pretrained)`. The
    pretrained state overwrites most of that initialisation, so after one build from an RNG state
    the next build from the same state skips it: the model is laid out on the meta device, filled
    from the pretrained state and the cached rest (head, buffers), and the RNG is left where the
    creation leaves it. The same tensors and the same RNG, without ViT-B/16's 2 s of initialisation
    on a CPU (tests/unit/runs/test_artifacts.py compares both builds for every backbone family)."""
    before = torch.get_rng_state()
    key = f"{backbone.name}/{num_classes}/{drop_path}/{hashlib.sha256(before.numpy().tobytes()).hexdigest()}"
    cached = _INITIAL.get(key)
    if cached is not None:
        model = _from_cache(backbone, num_classes, drop_path, pretrained, load, *cached)
        if model is not None:
            _INITIAL.move_to_end(key)
            return model
    model = backbone.create(num_classes=num_classes, drop_path=drop_path)
    after = torch.get_rng_state()
    load(model, pretrained)
    rest = {name: tensor.detach().clone() for name, tensor in _tensors(model).items() if name not in pretrained}
    _INITIAL[key] = (rest, after)
    while len(_INITIAL) > INITIAL_ENTRIES:
        _INITIAL.popitem(last=False)
    return model


def _from_cache(backbone, num_classes: int, drop_path: float, pretrained: Mapping[str, torch.Tensor], load,
                rest: Mapping[str, torch.Tensor], after: torch.Tensor) -> Optional[nn.Module]:
    """The model built without initialisation, or None where this family cannot be laid out on
    the meta device or the layout differs from the first build's (the caller then builds it)."""
    try:
        model = backbone.create(num_classes=num_classes, drop_path=drop_path, device="meta").to_empty(device="cpu")
    except Exception:  # a family whose constructor computes on its tensors: build it the slow way
        return None
    tensors = _tensors(model)
    uncovered = set(tensors) - set(rest) - set(pretrained)  # would keep to_empty's garbage
    if uncovered or not set(rest) <= set(tensors) or any(tensors[n].shape != v.shape for n, v in rest.items()):
        return None
    load(model, pretrained)
    with torch.no_grad():
        for name, value in rest.items():
            tensors[name].copy_(value)
    torch.set_rng_state(after)
    return model
