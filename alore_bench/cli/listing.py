"""`alore-bench list`: the registries as tables (from the code cache: no torch import when warm)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import render
from .options import DataDir, ListKind, flag_style, value


def list_command(
    what: Annotated[Optional[ListKind], typer.Argument(help="suites, methods, backbones or presets (default: all)")]
    = None,
    match: Annotated[str, typer.Option("--match", help="only names matching this wildcard, e.g. 'peft:*'")] = "*",
    options: Annotated[bool, typer.Option("--options", help=(
        "with methods: each method's options, defaults and help"))] = False,
    backbone: Annotated[str, typer.Option("--backbone", help=(
        "with methods: the backbone the budgets are counted on"))] = "vit_b16",
    data_dir: DataDir = None,
):
    """Show the registries as tables."""
    from ..api import list_tables

    for table in list_tables(value(what), match, backbone, options, data_dir, style=flag_style):
        render.console.print(render.text_table(table))
