"""Mid-run checkpoints: a run SIGKILLed in the middle of training resumes from its last checkpoint
and ends with exactly the numbers of an uninterrupted run; the checkpoint is gone afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).with_name("alore-bench"))]


def command(results):
    return CLI + ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits",
                  "--epochs", "3", "--batch-size", "100", "--checkpoint-every", "1", "--device", "cpu",
                  "--results-dir", str(results)]


def start(results) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}  # one thread: numbers comparable across runs
    return subprocess.Popen(command(results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(results) -> dict:
    process = start(results)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    (record,) = results.rglob("seed42.json")
    return json.loads(record.read_text())


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_with_the_uninterrupted_numbers(env_data, tmp_path):
    killed = tmp_path / "killed"
    process = start(killed)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not list(killed.rglob(".seed42.ckpt")):
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before its first checkpoint"
    time.sleep(0.5)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not list(killed.rglob("seed42.json")) and list(killed.rglob(".seed42.ckpt"))
    resumed = finish(killed)
    assert resumed["timing"]["resumed_from_epoch"] >= 1
    assert not list(killed.rglob(".seed42.ckpt*"))  # removed once the record is written
    clean = finish(tmp_path / "clean")
    assert clean["timing"]["resumed_from_epoch"] is None
    assert resumed["metrics"]["top1"] == clean["metrics"]["top1"]
    assert resumed["metrics"]["final_train_loss"] == clean["metrics"]["final_train_loss"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in clean["history"]]
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in clean["history"]]
