"""`alore-bench doctor`: parse, call api.doctor, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import render
from .options import DataDir, ResultsDir, flag_style


def doctor(data_dir: DataDir = None, results_dir: ResultsDir = Path("results"),
           as_json: Annotated[bool, typer.Option("--json", help="the checks as JSON (for scripts)")] = False):
    """Versions, device, writable folders, prepared suites, weight files, extras and leftovers of
    killed processes: what to fix, one line each; exit code 0 only when nothing needs fixing."""
    from ..api import doctor as doctor_api
    from ..checkup import as_json as checks_json

    checks = doctor_api(data_dir, results_dir, style=flag_style)
    if as_json:
        render.console.print(checks_json(checks), end="", highlight=False, markup=False, soft_wrap=True)
    else:
        render.checks(checks)
    raise typer.Exit(1 if any(c.status == "problem" for c in checks) else 0)
