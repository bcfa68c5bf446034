"""A study survives being killed and shares a results dir: real processes, SIGKILLed mid-job at
three points and restarted, end with every job's record exactly once, none corrupt, and the same
numbers as an uninterrupted run; two `study run` processes on one results dir run each job once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.studies import demo_study
from alore_bench.io import Claim
from alore_bench.study.expand import study_specs
from alore_bench.study.status import study_progress
from alore_bench.study.studyfile import load_study

STUDY = demo_study("faults")
JOBS = 7  # tuning: 2 + 1 grid points x 1 seed; final: 2 variants x 2 seeds
CLI = [str(Path(sys.executable).with_name("alore-bench"))]


def study_command(study: Path, results: Path):
    return CLI + ["study", "run", str(study), "--results-dir", str(results), "--device", "cpu"]


def start(study: Path, results: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}  # one thread: numbers comparable across runs
    return subprocess.Popen(study_command(study, results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def record_files(results: Path):
    return sorted(results.rglob("seed*.json"))


def running_claim(results: Path, pid: int) -> bool:
    """Whether process `pid` holds a claim now, i.e. is in the middle of a job."""
    for claim in results.rglob(".*.claim"):
        try:
            if json.loads(claim.read_text()).get("pid") == pid:
                return True
        except (OSError, ValueError):
            pass
    return False


def kill_mid_job(study: Path, results: Path, job: int) -> None:
    """Start the study and SIGKILL it while it runs its `job`-th job (counted over all restarts)."""
    process = start(study, results)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(record_files(results)) >= job - 1 and running_claim(results, process.pid):
            time.sleep(0.3)  # into the job: the model is built and training
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, f"the study ended before kill point {job}"


def outcomes(results: Path):
    out = {}
    for path in record_files(results):
        record = json.loads(path.read_text())  # every record parses: none corrupt
        out[str(path.relative_to(results))] = (record["status"], record["config_hash"], record["metrics"]["top1"],
                                               record["metrics"]["final_train_loss"])
    return out


@pytest.mark.slow
def test_a_study_killed_at_three_points_and_restarted_ends_as_an_uninterrupted_one(env_data, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    killed = tmp_path / "killed"
    for job in (1, 3, 6):  # mid-job in the first and last tuning jobs and in the third final job
        kill_mid_job(study, killed, job)
        assert len(record_files(killed)) == job - 1  # the killed job left no record, not even a partial one
    last = start(study, killed)
    output, _ = last.communicate(timeout=300)
    assert last.returncode == 0, output
    assert "2 run, 5 skipped, 0 failed" in output, output  # only what was missing
    clean = tmp_path / "clean"
    uninterrupted = start(study, clean)
    output, _ = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, output
    expected = outcomes(clean)
    assert len(expected) == JOBS and {v[0] for v in expected.values()} == {"ok"}
    assert outcomes(killed) == expected  # every job once, bit-identical numbers
    finals = [json.loads(p.read_text()) for p in record_files(killed)]
    assert sum(r["config"]["hparams"]["source"] == "tuned" for r in finals) == 4


@pytest.mark.slow
def test_two_study_processes_on_one_results_dir_run_each_job_once(env_data, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    results = tmp_path / "results"
    processes = [start(study, results) for _ in range(2)]
    # While they run, `study status` counts the jobs they hold as running.
    loaded = load_study(study)
    specs = study_specs(loaded, None, results, "cpu")
    deadline = time.monotonic() + 120
    running = 0
    while not running and time.monotonic() < deadline and any(p.poll() is None for p in processes):
        running = sum(row["running"] for row in study_progress(specs, [], Claim.running(results)))
        time.sleep(0.02)
    assert 1 <= running <= 2
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    ran = [re.findall(r"top-1 [\d.]+ \(train [\d.]+s\) -> (\S+)", out) for out in outputs]
    assert len(ran[0]) + len(ran[1]) == JOBS and not set(ran[0]) & set(ran[1])  # each job ran once
    assert ran[0] and ran[1]  # and the two processes shared the work
    assert len(outcomes(results)) == JOBS
    for out in outputs:  # both waited for the other's jobs and printed the complete table
        assert "Textures" in out and "alore" in out and "lora" in out
