"""Ctrl-C and SIGTERM during run, tune, study run (in this process and on worker processes) and
prepare: one line that says how to resume, exit 130 / 143, no claim, temporary file or partial
record left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).with_name("alore-bench"))]


STUDY = ('name = "mini"\nsuite = "demo"\ntasks = ["digits", "textures"]\nbackbones = ["demo_vit"]\n'
         'seeds = [42, 43]\n[recipe]\nepochs = 6\nbatch_size = 200\n[variants.lora]\ngrid = { lr = [1e-3, 1e-2] }\n')


def command(kind: str, results: Path) -> list:
    small = ["--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits", "--epochs", "8", "--batch-size", "200",
             "--device", "cpu", "--results-dir", str(results)]
    study = results.parent / "study.toml"
    study.write_text(STUDY)
    return CLI + {
        "run": ["run", "--method", "lora", *small],
        "tune": ["tune", "--method", "lora", *small, "--grid", "lr=1e-3,1e-2"],
        # The demo suite into a folder of its own: the claim to watch is the task's, under `results`.
        "prepare": ["prepare", "--suite", "demo", "--data-dir", str(results)],
    }[kind]


def start(results: Path, kind: str = "run") -> subprocess.Popen:
    return subprocess.Popen(command(kind, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def training(results: Path, process: subprocess.Popen) -> None:
    """Wait until the process holds a job's claim (it is inside a run)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(results.rglob(".*.claim")):
        time.sleep(0.05)
    time.sleep(0.5)


@pytest.mark.slow
# Each kind of command and each signal at least once (every combination, study runs on workers
# too, was run by hand for #21's fault battery; CI time is the limit).
@pytest.mark.parametrize("kind, signum, code, word", [
    ("run", signal.SIGINT, 130, "interrupted"), ("tune", signal.SIGTERM, 143, "terminated"),
    ("prepare", signal.SIGTERM, 143, "terminated"),  # (worker processes: tests/e2e/test_workers.py)
])
def test_an_interrupted_command_says_how_to_resume_and_leaves_nothing_half_written(env_data, tmp_path, kind, signum,
                                                                                     code, word):
    results = tmp_path / "results"
    process = start(results, kind)
    training(results, process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == code, output
    assert f"{word}: rerun the same command to resume" in output and "Traceback" not in output
    left = [p for p in results.rglob(".*") if ".claim" in p.name or ".tmp" in p.name]
    assert not left, left
    if kind == "run":
        assert not list(results.rglob("seed*.json"))  # no record of the interrupted job (a rerun resumes it:
        #                                               tests/e2e/test_resume.py)
    if kind == "prepare":  # a task is there whole (its manifest written last) or not at all
        for task in [p for p in (results / "demo").iterdir() if p.is_dir()]:
            assert (task / "manifest.json").is_file(), task
