"""What a process keeps between jobs because it is the same for every job that asks: the
pretrained backbone state and a task's verified splits. A worker runs many jobs of
one backbone and the seeds of a task in a row, so the last entry of each is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from ..config import stable_hash
from ..data.cache import SplitData, load_split
from ..data.suites import Task

_PRETRAINED: Dict[str, Dict[str, torch.Tensor]] = {}
_SPLITS: Dict[str, Tuple[SplitData, SplitData]] = {}


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
