"""`alore-bench run` and `alore-bench tune`: parse, call api.run / api.tune, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Dict, List, Optional

import typer

from . import render
from .options import (Address, Backbone, CheckpointEvery, CpusPerJob, DataDir, Device, EvalBatchSize, Executor,
                      Force, Log, Method, Opt, PerDevice, Preset, ResultsDir, Seeds, Suite, Tasks, TestEvery, Weights,
                      WeightsDir, Workers, value, with_recipe)


def _where(executor, workers, per_device, address, cpus_per_job, log) -> Dict[str, Any]:
    return dict(executor=value(executor), workers=workers, per_device=per_device, address=address,
                cpus_per_job=cpus_per_job, log=[value(v) for v in log or []])


@with_recipe()
def run(
    method: Method,
    backbone: Backbone,
    suite: Suite = "vtab1k",
    tasks: Tasks = None,
    seeds: Seeds = "42",
    device: Device = "auto",
    data_dir: DataDir = None,
    results_dir: ResultsDir = Path("results"),
    weights: Weights = None,
    weights_dir: WeightsDir = None,
    force: Force = False,
    opt: Opt = None,
    save_adapters: Annotated[bool, typer.Option("--save-adapters", help=(
        "also save what each run trained (safetensors, beside its record)"))] = False,
    preset: Preset = None,
    tuned: Annotated[bool, typer.Option("--tuned/--no-tuned", help=(
        "final stage: use the hyper-parameters `tune` selected for this configuration (default), or the defaults"))]
    = True,
    executor: Executor = None,
    workers: Workers = None,
    per_device: PerDevice = None,
    address: Address = None,
    cpus_per_job: CpusPerJob = None,
    log: Log = None,
    checkpoint_every: CheckpointEvery = 10,
    eval_batch_size: EvalBatchSize = 256,
    test_every: TestEvery = 0,
    recipe: Optional[Dict[str, Any]] = None,
):
    """Train and evaluate one method on a suite; writes one JSON record per task and seed. A final
    run uses the hyper-parameters `alore-bench tune` selected for this configuration when its
    records are in the results dir (each record says where its hyper-parameters came from)."""
    from ..api import run as run_api

    result = run_api(method, backbone, suite, tasks=tasks, seeds=seeds, options=opt or [], device=device,
                     data_dir=data_dir, results_dir=results_dir, weights=weights, weights_dir=weights_dir, force=force,
                     save_adapters=save_adapters, preset=preset, use_tuned=tuned, checkpoint_every=checkpoint_every,
                     eval_batch_size=eval_batch_size, test_every=test_every,
                     progress_factory=render.progress_bar, say=render.say,
                     **_where(executor, workers, per_device, address, cpus_per_job, log), **recipe)
    render.out(render.run_summary(result))
    raise typer.Exit(0 if result.ok else 1)


@with_recipe(exclude=("lr", "weight_decay", "stage", "normalisation"))
def tune(
    method: Method,
    backbone: Backbone,
    suite: Suite = "vtab1k",
    tasks: Tasks = None,
    seeds: Annotated[str, typer.Option("--seeds", help="comma-separated tuning seeds")] = "42",
    grid: Annotated[Optional[List[str]], typer.Option("--grid", metavar="KEY=V1,V2", help=(
        "key=v1,v2 (repeatable): lr, weight_decay or a method option; default: the suite's grid for the method"))]
    = None,
    device: Device = "auto",
    data_dir: DataDir = None,
    results_dir: ResultsDir = Path("results"),
    weights: Weights = None,
    weights_dir: WeightsDir = None,
    force: Annotated[bool, typer.Option("--force", help="rerun grid points that already have records")] = False,
    opt: Opt = None,
    preset: Preset = None,
    executor: Executor = None,
    workers: Workers = None,
    per_device: PerDevice = None,
    address: Address = None,
    cpus_per_job: CpusPerJob = None,
    log: Log = None,
    checkpoint_every: CheckpointEvery = 10,
    eval_batch_size: EvalBatchSize = 256,
    recipe: Optional[Dict[str, Any]] = None,
):
    """Run a hyper-parameter grid on the suite's tuning stage (VTAB-1k: train800 -> val200, never
    test), one record per point, task and seed, resumable; then show the point each task selects.
    A later `alore-bench run` of the same configuration uses the selected points."""
    from ..api import tune as tune_api

    result = tune_api(method, backbone, suite, tasks=tasks, seeds=seeds, grid=grid, options=opt or [], device=device,
                      data_dir=data_dir, results_dir=results_dir, weights=weights, weights_dir=weights_dir,
                      force=force, preset=preset, checkpoint_every=checkpoint_every, eval_batch_size=eval_batch_size,
                      progress_factory=render.progress_bar, say=render.say,
                      **_where(executor, workers, per_device, address, cpus_per_job, log), **recipe)
    render.out(render.run_summary(result))
    render.console.print(render.selection_table(result))
    raise typer.Exit(0 if result.ok else 1)
