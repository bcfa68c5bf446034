"""Hyper-parameters of one (spec, task): the layers, in order, and where each value came from.

Recipe: the suite's for the method, the caller's values (the spec's `train`), the preset's values
for the task (e.g. RLRR's per-task learning rates), then the point tuning selected for the task.
Method options: the caller's, the preset's for the task, the tuned point's, then the method's own
per-task settings (VPT's task_lengths).

A final run of a spec with `use_tuned` looks for tuning records of its own configuration (same
identity without the grid's keys and the stage) and selects per task on their validation top-1
only; it never reads a test split. Its records are filed under an identity that names the tuning
it used instead of the tuned values, so the tasks of one configuration stay one row whatever each
task selected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..config import TrainConfig, config_from_dict, config_to_dict
from ..errors import UserError, param
from ..tuning import base_identity, grid_key, select, split_point
from .record import iter_record_files, read_record, RECORD_SCHEMA
from .spec import RunSpec

DEFAULT = {"source": "default"}


def method_config_for(spec: RunSpec, task: str, tuned: Optional[Mapping[str, Any]] = None) -> Any:
    """The method config a run on `task` uses (`tuned`: the selected grid point, if any)."""
    method = spec.method_spec
    config = spec.preset_spec.apply(method, spec.method_config, task) if spec.preset_spec else spec.method_config
    if tuned:
        config = method.config_from_dict({**config_to_dict(config), **split_point(tuned)[1]})
    return method.config_for_task(config, task)


def train_config_for(spec: RunSpec, task: str, tuned: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """The recipe a run on `task` uses."""
    layers = [spec.preset_spec.recipe_for(task)] if spec.preset_spec else []
    if tuned and split_point(tuned)[0]:
        layers.append(split_point(tuned)[0])
    if not any(layers):
        return spec.train
    merged = config_to_dict(spec.train)
    for layer in layers:
        merged.update(layer)
    config = config_from_dict(TrainConfig, merged, "tuned recipe" if tuned else f"preset {spec.preset}")
    config.validate()
    return config


@dataclass(frozen=True)
class Hparams:
    """What one job trains with: the record's `config.hparams`, its identity, and any notes."""

    describe: Mapping[str, Any]
    identity: Mapping[str, Any]
    notes: Tuple[str, ...] = ()

    @property
    def point(self) -> Optional[Dict[str, Any]]:
        return self.describe.get("point") if self.describe.get("source") == "tuned" else None


def for_job(spec: RunSpec, task: str, identity: Mapping[str, Any],
            records: Optional[List[Mapping[str, Any]]] = None) -> Hparams:
    """The hyper-parameters of `task` under `spec`, whose configuration identity is `identity`.
    Tuning runs record their grid; final runs with `use_tuned` select from tuning `records`
    (default: read from the spec's results dir)."""
    if spec.grid is not None:
        return Hparams({"source": "tuning grid"}, identity)
    if spec.stage != "final" or not spec.use_tuned:
        return Hparams(DEFAULT, identity)
    records = tuning_records(spec) if records is None else records
    grids, bases = {}, {}
    for record in records:
        grid = record["tuning"]["grid"]
        key = grid_key(grid)
        if key not in bases:
            bases[key] = base_identity(identity, grid)
        if record["tuning"]["base"] == bases[key]:
            grids[key] = grid
    if not grids:
        return Hparams(DEFAULT, identity)
    if len(grids) > 1:
        raise UserError(f"tuning records of {spec.method} in {spec.results_dir} come from {len(grids)} different "
                        f"grids ({'; '.join(grids)}): keep one grid per results dir, or pass "
                        f"{param('use_tuned', False)}")
    grid = next(iter(grids.values()))
    fixed = sorted(set(grid) & set(spec.explicit))
    if fixed:
        note = (f"tuned values not used: {', '.join(fixed)} given explicitly (pass {param('use_tuned', False)} "
                "to silence this)")
        return Hparams({"source": "command line", "keys": fixed}, identity, (note,))
    base = base_identity(identity, grid)
    selection = select(records, task, base)
    notes = () if selection else (f"{task}: no tuning records of this configuration; default hyper-parameters",)
    tuned = {k: v for k, v in identity.items() if k not in ("train", "method_config")}
    tuned["train"] = {k: v for k, v in identity["train"].items() if k not in grid}
    tuned["method_config"] = {k: v for k, v in identity["method_config"].items() if k not in grid}
    tuned["hparams"] = {"source": "tuned", "base": base, "grid": grid}
    return Hparams(selection.describe(base, grid) if selection else DEFAULT, tuned, notes)


def tuning_records(spec: RunSpec) -> List[Dict[str, Any]]:
    """The ok-or-not tuning records of the spec's suite, backbone and method: only their folders
    (<results>/<suite>/<backbone>/<method>-*) are read, not the whole results dir."""
    folder = Path(spec.results_dir) / spec.suite / spec.backbone
    out = []
    if not folder.is_dir():
        return out
    for method_dir in sorted(folder.glob("*")):
        if not method_dir.is_dir() or method_dir.name.rpartition("-")[0] != spec.method:
            continue
        for path in iter_record_files(method_dir):
            try:
                record = read_record(path)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and record.get("schema") == RECORD_SCHEMA and record.get("tuning") and \
                    (record.get("suite"), record.get("backbone"), record.get("method")) == \
                    (spec.suite, spec.backbone, spec.method):
                out.append(record)
    return out


@dataclass
class TaskSelection:
    """The point tuning selected for one task, read back from the records (for tables)."""

    task: str
    point: Optional[Dict[str, Any]] = None
    val_top1: Optional[float] = None
    points: int = 0
    scores: List[Dict[str, Any]] = field(default_factory=list)


def selections(records: List[Mapping[str, Any]], tasks: List[str]) -> List[TaskSelection]:
    """Per task, the selection among the given tuning records (one grid of one configuration:
    their `tuning.base`, which each record names)."""
    out = []
    for task in tasks:
        bases = {r["tuning"]["base"] for r in records if r.get("task") == task and r.get("tuning")}
        best = select(records, task, next(iter(bases))) if len(bases) == 1 else None
        out.append(TaskSelection(task) if best is None else
                   TaskSelection(task, best.point, best.val_top1, len(best.scores), best.scores))
    return out
