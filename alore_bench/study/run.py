"""Running a study: expand it into jobs (per suite, backbone and variant: its tuning grid on the
tuning stage, then its final seeds), run them through an executor in two phases, tuning before
final, because a final job selects its hyper-parameters from its task's tuning records.

Every job is skipped when its record exists, so the same command after a kill does only what is
missing. Jobs another process holds a claim on are skipped at first and waited for at the end of
the phase, so no final job selects from tuning that is still running elsewhere, and the table
printed at the end is complete."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..methods import METHODS
from ..runner import RunSummary
from ..tuning import split_point
from .executors import Executor
from .jobs import Job, plan_jobs
from .plan import make_plan
from .studyfile import Study, Variant

STAGES = ("tune", "final")


def study_job_list(study: Study, data_dir: Optional[Path], results_dir: Path, device: str = "auto",
                   force: bool = False, log: Tuple[str, ...] = ()) -> Dict[str, List[Job]]:
    """The study's jobs by stage, in a stable order: suite, backbone, variant, grid point, task, seed."""
    jobs: Dict[str, List[Job]] = {stage: [] for stage in STAGES}
    for suite in study.suite_names:
        tasks = study.tasks_of(suite)
        for backbone, weights in study.backbones:
            for variant in study.variants:
                if suite not in variant.grids:
                    continue
                recipe = {**study.recipe, **variant.recipe}
                grid = variant.grids[suite]
                # An empty grid (`grid = {}`: settings fixed, e.g. by a preset) has nothing to tune.
                for index, point in enumerate(grid.points() if grid else []):
                    train_values, method_values = split_point(point)
                    plan = make_plan(variant.method, backbone, suite, tasks, study.tuning_seeds,
                                     {**recipe, **train_values, "stage": "tune"}, _with_options(variant, method_values),
                                     data_dir, results_dir, device, weights, force, preset=variant.preset)
                    plan.grid, plan.grid_index, plan.variant, plan.log = grid, index, variant.name, log
                    jobs["tune"].extend(plan_jobs(plan))
                plan = make_plan(variant.method, backbone, suite, tasks, study.seeds, {**recipe, "stage": "final"},
                                 variant.method_config, data_dir, results_dir, device, weights, force,
                                 preset=variant.preset)
                plan.use_tuned, plan.variant, plan.log = bool(grid), variant.name, log
                jobs["final"].extend(plan_jobs(plan))
    return jobs


def _with_options(variant: Variant, values: Mapping[str, Any]) -> Any:
    if not values:
        return variant.method_config
    spec = METHODS.get(variant.method)
    return spec.config_from_dict({**dataclasses.asdict(variant.method_config), **values})


def run_study(study: Study, executor: Executor, data_dir: Optional[Path], results_dir: Path, device: str = "auto",
              force: bool = False, log: Tuple[str, ...] = (),
              say: Callable[[str], None] = print) -> RunSummary:
    """Run the study's tuning jobs, then its final jobs; each phase ends only when every one of its
    jobs has a record (jobs claimed by other processes are waited for, and run here if their
    owner died)."""
    jobs = study_job_list(study, data_dir, results_dir, device, force, log)
    total = RunSummary()
    for stage in STAGES:
        say(f"study {study.name}: {len(jobs[stage])} {stage} jobs on {executor.describe()}")
        summary = executor.run(jobs[stage])
        if summary.busy:
            say(f"study {study.name}: waiting for {len(summary.busy)} {stage} jobs other processes are running")
            busy = {str(p) for p in summary.busy}
            waiting = [job.replace(wait=True, force=False) for job in jobs[stage]]
            later = executor.run([job for job in waiting if _may_be(job, busy)])
            summary.skipped = [p for p in summary.skipped if p not in summary.busy] + later.skipped
            summary.ran += later.ran
            summary.failed += later.failed
            summary.busy = []
        total.add(summary)
    return total


def _may_be(job: Job, busy_paths) -> bool:
    """Whether `job` may be one of the busy ones: same task and seed as one of their record paths
    (its exact path depends on hyper-parameters selected at run time)."""
    return any(Path(p).parent.name == job.task and Path(p).name == f"seed{job.seed}.json" for p in busy_paths)


def study_counts(study: Study, jobs: Mapping[str, List[Job]]) -> List[Dict[str, Any]]:
    """Runs per (suite, backbone, variant, stage), for `study plan` and `study status`."""
    rows: Dict[Tuple[str, str, str, str], Dict[str, Any]] = {}
    for stage in STAGES:
        for job in jobs[stage]:
            key = (job.suite, job.backbone, job.variant, stage)
            row = rows.setdefault(key, {"suite": job.suite, "backbone": job.backbone, "variant": job.variant,
                                        "stage": stage, "runs": 0, "grid points": set()})
            row["runs"] += 1
            if job.grid_index is not None:
                row["grid points"].add(job.grid_index)
    for row in rows.values():
        row["grid points"] = len(row["grid points"]) or None
    return list(rows.values())


def study_progress(study: Study, jobs: Mapping[str, List[Job]], records: List[Mapping[str, Any]],
                   running: List[Mapping[str, Any]] = ()) -> List[Dict[str, Any]]:
    """Per suite, backbone, variant and stage: runs expected, done, running (claims held now),
    failed, pending and train time spent, counted from the records the study's variants wrote
    (`variant` field)."""
    rows = []
    for job in study_counts(study, jobs):
        mine = [r for r in records if r.get("variant") == job["variant"] and r.get("backbone") == job["backbone"]
                and r.get("suite") == job["suite"]
                and ((r.get("config") or {}).get("train") or {}).get("stage") == job["stage"]]
        done = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine if r.get("status") == "ok"}
        failed = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine
                  if r.get("status") != "ok"} - done
        seconds = sum(((r.get("timing") or {}).get("train_seconds") or 0.0) for r in mine)
        now = sum(1 for claim in running if {k: (claim.get("job") or {}).get(k) for k in ("suite", "backbone", "variant",
                                                                                           "stage")}
                  == {k: job[k] for k in ("suite", "backbone", "variant", "stage")})
        rows.append({**job, "done": len(done), "running": now, "failed": len(failed),
                     "pending": max(job["runs"] - len(done) - len(failed) - now, 0), "train_seconds": seconds})
    return rows
