"""Running a study: per backbone and variant, its tuning grid on the tuning stage, then the final
runs with each task's selected point. Every step goes through the runner, which skips what is
already recorded, so running a study again does only what is missing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

from ..methods import METHODS
from ..runner import RunPlan
from ..tuning import split_point
from .plan import make_plan
from .studyfile import Study, Variant


def study_plans(study: Study, data_dir: Optional[Path], results_dir: Path, device: str = "auto",
                force: bool = False) -> Iterator[RunPlan]:
    """The study's RunPlans in order: each variant's grid points (tuning stage), then its final runs."""
    for backbone, weights in study.backbones:
        for variant in study.variants:
            recipe = {**study.recipe, **variant.recipe}
            for index, point in enumerate(variant.grid.points()):
                train_values, method_values = split_point(point)
                config = _with_options(variant, method_values)
                plan = make_plan(variant.method, backbone, study.suite, study.tasks, study.tuning_seeds,
                                 {**recipe, **train_values, "stage": "tune"}, config, data_dir, results_dir,
                                 device, weights, force, preset=variant.preset)
                plan.grid, plan.grid_index, plan.variant = variant.grid, index, variant.name
                yield plan
            plan = make_plan(variant.method, backbone, study.suite, study.tasks, study.seeds,
                             {**recipe, "stage": "final"}, variant.method_config, data_dir, results_dir, device,
                             weights, force, preset=variant.preset)
            plan.use_tuned, plan.variant = True, variant.name
            yield plan


def _with_options(variant: Variant, values: Mapping[str, Any]) -> Any:
    if not values:
        return variant.method_config
    spec = METHODS.get(variant.method)
    return spec.config_from_dict({**dataclasses.asdict(variant.method_config), **values})


def run_study(study: Study, execute: Callable[[RunPlan], int], data_dir: Optional[Path], results_dir: Path,
              device: str = "auto", force: bool = False) -> int:
    """Run every plan of the study through `execute`; the exit status is 1 when any run failed."""
    status = 0
    for plan in study_plans(study, data_dir, results_dir, device, force):
        status |= execute(plan)
    return status


def study_progress(study: Study, records: List[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per backbone, variant and stage: runs expected, done, failed, pending and train time spent,
    counted from the records the study's variants wrote (`variant` field)."""
    from .studyfile import study_jobs

    rows = []
    for job in study_jobs(study):
        mine = [r for r in records if r.get("variant") == job["variant"] and r.get("backbone") == job["backbone"]
                and r.get("suite") == study.suite
                and ((r.get("config") or {}).get("train") or {}).get("stage") == job["stage"]]
        done = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine if r.get("status") == "ok"}
        failed = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine
                  if r.get("status") != "ok"} - done
        seconds = sum(((r.get("timing") or {}).get("train_seconds") or 0.0) for r in mine)
        rows.append({**job, "done": len(done), "failed": len(failed),
                     "pending": max(job["runs"] - len(done) - len(failed), 0), "train_seconds": seconds})
    return rows
