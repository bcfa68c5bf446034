"""Jobs: the unit of execution. A job is one (suite, task, backbone, method config, train config,
seed, stage) with where its data and records live; it is plain data (a JSON-safe dict round trip),
so any executor can ship it to a worker process, a Ray task or another machine. Running a job is
always `runner.run_plan` on a one-task, one-seed plan: whichever executor runs it, the record it
writes is the same."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..backbones import BACKBONES
from ..config import TrainConfig, config_from_dict, config_to_dict
from ..data.suites import SUITES
from ..engine import Progress
from ..env import resolve_device
from ..methods import METHODS
from ..presets import PRESETS
from ..runner import RunPlan, RunSummary, run_plan
from ..tuning import Grid


@dataclass(frozen=True)
class Job:
    suite: str
    task: str
    backbone: str
    method: str
    method_config: Dict[str, Any]
    train_config: Dict[str, Any]
    seed: int
    data_dir: str
    results_dir: str
    device: str = "auto"
    weights: Optional[str] = None
    preset: Optional[str] = None
    variant: Optional[str] = None
    grid: Optional[Dict[str, List[Any]]] = None  # a tuning job: its grid and its point's index
    grid_index: Optional[int] = None
    use_tuned: bool = False
    explicit_keys: Tuple[str, ...] = ()
    force: bool = False
    save_adapters: bool = False
    # While another process holds this job's claim: False skips it, True waits for it to finish
    # (and runs the job if its owner died without a record).
    wait: bool = False
    log: Tuple[str, ...] = field(default=())
    checkpoint_every: int = 10

    @property
    def stage(self) -> str:
        return self.train_config["stage"]

    def describe(self) -> str:
        return f"{self.variant or self.method} {self.stage} {self.task} seed {self.seed}"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Job":
        data = dict(data)
        for key in ("explicit_keys", "log"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)

    def replace(self, **changes: Any) -> "Job":
        return dataclasses.replace(self, **changes)

    def to_plan(self) -> RunPlan:
        suite = SUITES.get(self.suite)
        method = METHODS.get(self.method)
        grid = Grid(tuple((k, tuple(v)) for k, v in self.grid.items())) if self.grid is not None else None
        return RunPlan(suite=suite, tasks=suite.select([self.task]), backbone=BACKBONES.get(self.backbone),
                       method=method, method_config=method.config_from_dict(self.method_config),
                       train_config=config_from_dict(TrainConfig, self.train_config, "job"), seeds=[self.seed],
                       data_dir=Path(self.data_dir), results_dir=Path(self.results_dir),
                       device=resolve_device(self.device), weights=self.weights, force=self.force,
                       save_adapters=self.save_adapters, preset=PRESETS.get(self.preset) if self.preset else None,
                       grid=grid, grid_index=self.grid_index, use_tuned=self.use_tuned,
                       explicit_keys=frozenset(self.explicit_keys), variant=self.variant, wait=self.wait,
                       log=self.log, checkpoint_every=self.checkpoint_every)


def plan_jobs(plan: RunPlan) -> List[Job]:
    """A RunPlan's jobs, task by task, seed by seed (the order `run` has always used)."""
    common = dict(suite=plan.suite.name, backbone=plan.backbone.name, method=plan.method.name,
                  method_config=config_to_dict(plan.method_config), train_config=config_to_dict(plan.train_config),
                  data_dir=str(plan.data_dir), results_dir=str(plan.results_dir), device=str(plan.device),
                  weights=plan.weights, preset=plan.preset.name if plan.preset else None, variant=plan.variant,
                  grid=plan.grid.describe() if plan.grid is not None else None, grid_index=plan.grid_index,
                  use_tuned=plan.use_tuned, explicit_keys=tuple(sorted(plan.explicit_keys)), force=plan.force,
                  save_adapters=plan.save_adapters, wait=plan.wait, log=tuple(plan.log),
                  checkpoint_every=plan.checkpoint_every)
    return [Job(task=task.name, seed=seed, **common) for task in plan.tasks for seed in plan.seeds]


def run_job(job: Job, progress: Progress, say: Callable[[str], None]) -> RunSummary:
    """Run one job in this process: exactly one record written, or skipped when it exists or is
    claimed by another process."""
    return run_plan(job.to_plan(), progress, say)
