"""`alore-bench study plan | status | run | report`: parse, call the api's study functions, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import render
from .options import (Address, CpusPerJob, DataDir, Device, Executor, Log, PerDevice, ResultsDir,
                      StudyEvalBatchSize, Workers, value)

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="A whole protocol from one study file: tune, select, final runs, table.")
StudyFile = Annotated[Path, typer.Argument(help="a study TOML file (see studies/)")]


@app.command("plan")
def plan(file: StudyFile):
    """The runs a study consists of, counted per suite, backbone, variant and stage; runs nothing."""
    from ..api import study_plan

    result = study_plan(file)
    render.console.print(render.study_plan_table(result))
    render.out(f"{result.runs} runs in all")


@app.command("status")
def status(file: StudyFile, results_dir: ResultsDir = Path("results")):
    """Done, failed and pending runs per suite, backbone, variant and stage, from the records."""
    from ..api import study_status

    result = study_status(file, results_dir)
    render.console.print(render.study_status_table(result, results_dir))
    if result.remaining_minutes is not None:
        render.out(f"about {result.remaining_minutes:.0f} min of training remain "
                   f"(at {result.seconds_per_run:.1f} s per run so far)")


@app.command("run")
def run(file: StudyFile, data_dir: DataDir = None, results_dir: ResultsDir = Path("results"), device: Device = "auto",
        force: Annotated[bool, typer.Option("--force", help="rerun recorded runs")] = False,
        executor: Executor = None, workers: Workers = None, per_device: PerDevice = None, address: Address = None,
        cpus_per_job: CpusPerJob = None, log: Log = None, eval_batch_size: StudyEvalBatchSize = None):
    """Tune every variant on the tuning stage, select per task, run the final seeds, print the table.
    Idempotent: run it again after an interruption and it does only what is missing. Options given
    here override the study file's [executor]."""
    from ..api import study_run

    result = study_run(file, data_dir, results_dir, device, force, value(executor), workers, per_device, address,
                       cpus_per_job, [value(v) for v in log or []], progress_factory=render.progress_bar,
                       say=render.say, eval_batch_size=eval_batch_size)
    render.out(result.summary.line())
    render.tables(result.tables)
    raise typer.Exit(0 if result.ok else 1)


@app.command("report")
def report(file: StudyFile, results_dir: ResultsDir = Path("results"),
           out: Annotated[Optional[Path], typer.Option("--out", help="write .md, .csv, .json or .tex")] = None,
           wide: Annotated[bool, typer.Option("--wide", help="every column on the terminal")] = False):
    """The study's table (final stage, its variants only), on the terminal or into a file."""
    from ..api import study_report

    result = study_report(file, results_dir, out)
    if out is None:
        render.tables(result.tables, wide=wide)
    else:
        render.say(f"wrote {out}")
