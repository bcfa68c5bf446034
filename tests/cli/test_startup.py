"""Commands that train nothing start without the training stack: torch, timm and peft are blocked
(tests/support/no_torch.py) and the command must still do its work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import alore_bench as ab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records(demo_data, tmp_path_factory):
    """Two methods' records on the demo suite, and a code cache warmed by writing them."""
    base = tmp_path_factory.mktemp("startup")
    cache = base / "cache"
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        for method in ("linear", "bitfit"):
            ab.run(method, "demo_vit", suite="demo", tasks=["digits", "textures"], data_dir=demo_data,
                   results_dir=base / "results", epochs=1, batch_size=128, device="cpu")
        ab.report(base / "results", fmt="md")  # what `demo` and every run-then-report do: the names are cached
    finally:
        os.environ.pop("XDG_CACHE_HOME") if previous is None else os.environ.__setitem__("XDG_CACHE_HOME", previous)
    return base


def without_torch(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.support.no_torch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_guard_fails_a_command_that_needs_torch(records, demo_data):
    done = without_torch(records / "cache", "run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo",
                         "--data-dir", str(demo_data), "--results-dir", str(records / "other"), "--epochs", "1")
    assert done.returncode != 0 and "guard: torch imported" in done.stdout + done.stderr


@pytest.mark.parametrize("fmt", [None, "md", "tex"])
def test_report_imports_no_torch(records, fmt):
    args = ["report", "--results-dir", str(records / "results"), *(["--format", fmt] if fmt else [])]
    done = without_torch(records / "cache", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BitFit" in done.stdout and "Linear" in done.stdout  # display names, from the cache
