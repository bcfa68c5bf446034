"""`alore-bench bench`: parse, call api.bench, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import render
from .options import Device


def bench(
    backbone: Annotated[str, typer.Option("--backbone", help="backbone (random weights: nothing is downloaded)")]
    = "vit_b16",
    methods: Annotated[str, typer.Option("--methods", help="comma-separated methods")] = "alore,lora,full,linear",
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help=(
        "images per step (default: 8 on CPU, 64 on CUDA)"))] = None,
    steps: Annotated[int, typer.Option("--steps", help="timed repetitions per measurement (the median is shown)")] = 5,
    device: Device = "auto",
    threads: Annotated[int, typer.Option("--threads", help="torch threads per worker (0: torch's default)")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the measurements as JSON here")] = None,
):
    """Measure each method's cost on a backbone: trainable parameters, forward GFLOPs, training step
    time and peak memory against the cheapest PETL step (the floor), inference latency unmerged and
    merged against the plain backbone. Each method runs in a fresh process."""
    from ..api import bench as bench_api
    from ..backbones import BACKBONES

    with render.progress_bar() as progress:
        result = bench_api(backbone, methods, batch_size, steps, device, threads, json_out, progress=progress)
    render.console.print(render.bench_table(result, BACKBONES.get(backbone).display_name, steps))
    raise typer.Exit(1 if any(row["error"] for row in result["rows"]) else 0)
