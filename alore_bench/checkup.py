"""`alore-bench doctor`: what this installation can do and what to fix, one line each.

Each check is (name, status, detail) with status ok, note (worth knowing, nothing to fix) or
problem (something to fix); the command exits 0 only without problems."""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List

from .io import LEFTOVER, stale_leftovers


@dataclass
class Check:
    name: str
    status: str  # ok | note | problem
    detail: str


def _writable(folder: Path, option: str) -> Check:
    from .errors import UserError, param
    from .io import check_writable_folder

    if not folder.exists():  # not created by a check: its nearest existing parent must be writable
        parent = next(p for p in folder.absolute().parents if p.exists())
        if parent.is_dir() and os.access(parent, os.W_OK):
            return Check(f"{param(option)} writable", "ok", f"{folder} (created on first use)")
        return Check(f"{param(option)} writable", "problem", f"{param(option)} {folder}: cannot be created under {parent}")
    try:
        check_writable_folder(folder, option)
    except UserError as exc:
        return Check(f"{param(option)} writable", "problem", exc.template)
    return Check(f"{param(option)} writable", "ok", str(folder))


def run_checks(data_dir: Path, results_dir: Path) -> List[Check]:
    import torch

    from ._version import __version__
    from .backbones import BACKBONES
    from .data.cache import MANIFEST, task_dir
    from .data.suites import SUITES
    from .env import git_commit

    checks = [Check("alore-bench", "ok", f"{__version__} (commit {git_commit() or 'not a checkout'})"),
              Check("torch", "ok", f"{torch.__version__}, CUDA {'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available (CPU runs)'}")]
    checks += [_writable(data_dir, "data_dir"), _writable(results_dir, "results_dir")]
    for suite in SUITES:
        spec = SUITES.get(suite)
        ready, corrupt = [], []
        for task in spec.tasks:
            manifest = task_dir(data_dir, task) / MANIFEST
            if manifest.is_file():
                try:
                    json.loads(manifest.read_text(encoding="utf-8"))
                    ready.append(task.name)
                except ValueError:
                    corrupt.append(task.name)
        if corrupt:
            checks.append(Check(f"suite {suite}", "problem", f"corrupt manifests: {', '.join(corrupt)}: rerun "
                                                             f"`alore-bench prepare --suite {suite} --force`"))
        else:
            status = "ok" if len(ready) == len(spec.tasks) else "note"
            checks.append(Check(f"suite {suite}", status, f"{len(ready)} of {len(spec.tasks)} tasks prepared"
                                + ("" if status == "ok" else f" (`alore-bench prepare --suite {suite}`)")))
    for name in BACKBONES:
        try:
            source = BACKBONES.get(name).resolve_weights(None, data_dir)
            checks.append(Check(f"weights {name}", "ok", f"{source.location} (sha256 {(source.sha256 or '')[:12]})"))
        except Exception as exc:  # a missing file is a note: the backbone is simply not usable yet
            checks.append(Check(f"weights {name}", "note", getattr(exc, "template", str(exc)).splitlines()[0]))
    for extra, module in (("ray", "ray"), ("tensorboard", "tensorboard"), ("tfds", "tensorflow_datasets"),
                          ("vtab (TensorFlow for 4 TFDS builders)", "tensorflow")):
        present = importlib.util.find_spec(module) is not None
        checks.append(Check(f"extra {extra}", "ok" if present else "note", "installed" if present else "not installed"))
    leftovers = []
    for root in (data_dir, results_dir):
        if root.is_dir():
            leftovers += stale_leftovers(p for p in root.rglob(".*") if LEFTOVER.match(p.name))
    checks.append(Check("stale temporary files", "problem" if leftovers else "ok",
                        (f"{len(leftovers)} left by killed processes (e.g. {leftovers[0]}): the next run or "
                         "prepare removes them") if leftovers else "none"))
    return checks


def as_json(checks: List[Check]) -> str:
    return json.dumps({"ok": not any(c.status == "problem" for c in checks),
                       "checks": [asdict(c) for c in checks]}, indent=2) + os.linesep
