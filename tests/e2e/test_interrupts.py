"""Ctrl-C and SIGTERM during a run: one line that says how to resume, exit 130 / 143, no claim,
temporary file or partial record left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).with_name("alore-bench"))]


def start(results: Path) -> subprocess.Popen:
    command = CLI + ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits",
                     "--epochs", "8", "--batch-size", "200", "--device", "cpu", "--results-dir", str(results)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def training(results: Path, process: subprocess.Popen) -> None:
    """Wait until the process holds a job's claim (it is inside a run)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(results.rglob(".*.claim")):
        time.sleep(0.05)
    time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                               (signal.SIGTERM, 143, "terminated")])
def test_an_interrupted_run_says_how_to_resume_and_leaves_nothing_half_written(env_data, tmp_path, signum, code,
                                                                                 word):
    results = tmp_path / "results"
    process = start(results)
    training(results, process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == code, output
    assert f"{word}: rerun the same command to resume" in output and "Traceback" not in output
    left = [p for p in results.rglob(".*") if ".claim" in p.name or ".tmp-" in p.name]
    assert not left, left
    assert not list(results.rglob("seed*.json"))  # no record of the interrupted job (a rerun resumes it:
    #                                               tests/e2e/test_resume.py)
