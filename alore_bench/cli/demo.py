"""`alore-bench demo`: parse, call api.demo, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import render
from .options import DataDir, Device, ResultsDir, Seeds

DEMO_METHODS = "linear,full,lora,alore"


def demo(
    data_dir: DataDir = None,
    results_dir: ResultsDir = Path("results"),
    device: Device = "auto",
    methods: Annotated[str, typer.Option("--methods", help="comma-separated methods to run")] = DEMO_METHODS,
    seeds: Seeds = "42",
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="training epochs")] = None,
):
    """Offline in minutes: prepare the demo suite, run linear, full, lora and alore on demo_vit, report."""
    from ..api import demo as demo_api

    result = demo_api(data_dir, results_dir, device, methods, seeds, epochs, progress_factory=render.progress_bar,
                      say=render.say, done=lambda run: render.out(render.run_summary(run)))
    render.tables([result.table])
    render.out(f"demo finished in {result.seconds:.0f} s")
    raise typer.Exit(0 if result.ok else 1)
