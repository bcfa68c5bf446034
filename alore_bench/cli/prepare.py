"""`alore-bench prepare`: parse, call api.prepare, render."""

from __future__ import annotations

from typing import Annotated, Optional
from pathlib import Path

import typer

from . import render
from .options import DataDir, SourceKind, value


def prepare(
    suite: Annotated[str, typer.Option("--suite", help="suite to prepare (see `alore-bench list suites`)")],
    source_path: Annotated[Optional[Path], typer.Argument(help=(
        "with --source folder, json or archive: the pre-made folder or .zip, the JSON splits' folder, the archives' "
        "folder"))] = None,
    data_dir: DataDir = None,
    tasks: Annotated[Optional[str], typer.Option("--tasks", help="comma-separated task names (default: all)")] = None,
    source: Annotated[Optional[SourceKind], typer.Option("--source", help=(
        "tfds (default for vtab1k), folder PATH (VTAB-1k folders), json PATH (FGVC with VPT's splits) or archive "
        "DIR (FGVC from the original archives)"))] = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild tasks that are already prepared")] = False,
    allow_mismatch: Annotated[bool, typer.Option("--allow-mismatch", help=(
        "accept split sizes that differ from the official ones (recorded)"))] = False,
    tfds_dir: Annotated[Optional[Path], typer.Option("--tfds-dir", help="TFDS data dir (default: TFDS's own)")] = None,
    manual_dir: Annotated[Optional[Path], typer.Option("--manual-dir", help=(
        "manual downloads, one folder per TFDS builder (default: <data dir>/manual)"))] = None,
):
    """Build a suite's verified data cache."""
    from ..api import prepare as prepare_api

    with render.progress_bar() as progress:
        summary = prepare_api(suite, tasks, data_dir, value(source), source_path, force, allow_mismatch, tfds_dir,
                              manual_dir, progress, render.progress_say(progress))
    missing = [name for name, _ in summary.unavailable]
    render.out(f"{summary.root.name} in {summary.root}: {len(summary.prepared)} prepared, {len(summary.skipped)} "
               f"already there, {len(summary.unavailable)} not prepared"
               + (f" ({', '.join(missing)}: the reasons are above)" if missing else ""))
    raise typer.Exit(1 if summary.unavailable else 0)
