"""Preflight: every check of the world a spec needs before training (prepared data, its source
against the protocol, the results dir, the weights), run once per spec before any of its jobs,
so a mistake is one line before any work, whichever executor runs the jobs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

from ..data.cache import missing_tasks, read_manifest
from ..errors import UserError, param
from ..io import check_writable_folder, clean_children, clean_tree
from ..protocols import PROTOCOLS
from .spec import RunSpec, resolve_protocol

# Free space a run needs in the results dir before it starts: records are small, adapters are not.
MIN_FREE_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Checked:
    """What preflight found: the spec with its protocol resolved (`auto`), the manifests of its
    tasks and its resolved weights."""

    spec: RunSpec
    manifests: Mapping[str, Mapping]
    weights: object  # backbones.WeightSource


def check_data(spec: RunSpec) -> None:
    missing = missing_tasks(spec.data_dir, spec.suite_spec, spec.task_specs)
    if missing:
        shown = ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else "")
        raise UserError(f"suite {spec.suite} is not prepared in {spec.data_dir} (missing {shown}): "
                        f"run `alore-bench prepare --suite {spec.suite}` or pass {param('data_dir')}")


def check_model_size(spec: RunSpec) -> None:
    """Options that would build a model larger than twice its backbone (`rank=1000000`) are a typo,
    not a run: refused from a build on the meta device (no memory) before anything is allocated."""
    if spec.method_config == spec.method_spec.default_config():
        return
    trainable, backbone = _sizes(spec.method, spec.method_config, spec.backbone)
    if trainable > 2 * backbone:
        raise UserError(f"{param('options')}: {spec.method} with these options has {trainable / 1e6:,.1f}M trainable parameters, more "
                        f"than twice the whole backbone {spec.backbone} ({backbone / 1e6:,.1f}M): check the values")


@lru_cache(maxsize=256)
def _sizes(method: str, config, backbone: str) -> Tuple[int, int]:
    from ..params import backbone_size, build_and_count

    return build_and_count(method, backbone, config), backbone_size(backbone)


def preflight(spec: RunSpec) -> Checked:
    check_data(spec)  # data before weights: the cheaper fix first
    check_model_size(spec)
    check_writable_folder(spec.results_dir, "results_dir", MIN_FREE_BYTES)
    manifests: Dict[str, Mapping] = {task.name: read_manifest(spec.data_dir, task) for task in spec.task_specs}
    spec = resolve_protocol(spec, source_kinds(manifests))
    protocol = PROTOCOLS.get(spec.train.protocol)
    for name, manifest in manifests.items():
        protocol.check_source(name, manifest["source"]["kind"])
    return Checked(spec, manifests, spec.backbone_spec.resolve_weights(spec.weights, spec.data_dir))


def source_kinds(manifests: Mapping[str, Mapping]) -> Dict[str, str]:
    return {task: manifest["source"]["kind"] for task, manifest in manifests.items()}


def clean_leftovers(specs: List[RunSpec]) -> List[str]:
    """Leftovers of killed processes in the specs' data and results dirs, cleaned (or, for a task
    a killed `prepare --force` left aside, restored) once per command, before its checks."""
    done: List[str] = []
    for folder in dict.fromkeys(Path(s.data_dir) / s.suite for s in specs):
        done += clean_children(folder)
    for folder in dict.fromkeys(Path(s.results_dir) for s in specs):
        done += clean_tree(folder)
    return done
