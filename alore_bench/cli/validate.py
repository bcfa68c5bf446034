"""`alore-bench validate method | suite | study`: parse, call the api's validate functions, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import render

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help=(
    "Check a method (the contract's test table), a suite file or a study file without running them."))


@app.command("method")
def method(name: Annotated[str, typer.Argument(help="a registered method (built-in or plugin)")]):
    """Run the method contract's checks on a tiny ViT: shape, identity at init where declared,
    trainable = declared budget, frozen weights bit-identical, gradients, config JSON round trip,
    safetensors save / load, merge == unmerged when mergeable. Exit 1 when a check fails."""
    from ..api import validate_method

    result = validate_method(name)
    render.validation(result)
    raise typer.Exit(0 if result.ok else 1)


@app.command("suite")
def suite(file: Annotated[Path, typer.Argument(help="a suite TOML file")]):
    """Parse a suite file as `prepare` and `run` would (tasks, groups, splits, stages); runs nothing."""
    from ..api import validate_suite

    render.out(validate_suite(file).summary)


@app.command("study")
def study(file: Annotated[Path, typer.Argument(help="a study TOML file")]):
    """Parse a study file and expand it into its runs (methods, options, grids, suites, tasks,
    backbones checked); runs nothing and needs no data."""
    from ..api import validate_study

    render.out(validate_study(file).summary)
