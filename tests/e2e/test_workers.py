"""Worker processes write the records the local executor writes, for studies, tune and run."""

from __future__ import annotations

import json

from alore_bench.cli import app
from tests.support.studies import demo_study
from tests.unit.execution.test_executors import records, runner, write_study


def test_worker_processes_write_the_records_of_the_local_executor(env_data, tmp_path):
    """(The Ray executor gets the same check on the whole demo study in CI: .ci/check_study.)"""
    study = write_study(tmp_path, demo_study("workers", lora=False))  # ALoRE's variant: 4 jobs (CI time)
    local = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "local"), "--device", "cpu"])
    assert local.exit_code == 0, local.output
    workers = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "workers"),
                                  "--device", "cpu", "--workers", "2"])
    assert workers.exit_code == 0, workers.output
    expected = records(tmp_path / "local")
    assert len(expected) == 4 and all(status == "ok" for _h, _t, status in expected.values())
    assert records(tmp_path / "workers") == expected  # same files, same configuration hashes, same top-1
    again = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "workers"),
                                "--device", "cpu", "--workers", "2"])
    assert again.exit_code == 0 and "0 run, 4 skipped, 0 failed" in again.output


def test_run_and_tune_take_the_same_executor_options(env_data, tmp_path):
    results = tmp_path / "results"
    tune = runner.invoke(app, ["tune", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                               "textures", "--epochs", "1", "--grid", "lr=1e-3,1e-2", "--results-dir", str(results),
                               "--device", "cpu", "--workers", "2"])
    assert tune.exit_code == 0 and "2 run, 0 skipped" in tune.output, tune.output
    run = runner.invoke(app, ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                              "textures", "--epochs", "1", "--seeds", "42,44", "--results-dir", str(results),
                              "--device", "cpu", "--workers", "2"])
    assert run.exit_code == 0 and "2 run, 0 skipped" in run.output, run.output
    final = [r for r in map(lambda p: json.loads(p.read_text()), results.rglob("seed*.json"))
             if r["config"]["train"]["stage"] == "final"]
    assert len(final) == 2 and all(r["config"]["hparams"]["source"] == "tuned" for r in final)


def test_a_killed_worker_is_one_line_and_the_same_command_resumes(env_data, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from tests.e2e.test_interrupts import STUDY

    study = tmp_path / "study.toml"
    # One task, one seed, two grid points: three jobs, the first killed while it runs.
    study.write_text(STUDY.replace("epochs = 6", "epochs = 2").replace('["digits", "textures"]', '["digits"]')
                     .replace("[42, 43]", "[42]"))
    results = tmp_path / "results"
    command = [str(Path(sys.executable).with_name("alore-bench")), "study", "run", str(study), "--results-dir",
               str(results), "--device", "cpu", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not list(results.rglob(".*.claim")):
        time.sleep(0.05)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    os.kill(int(workers[-1]), signal.SIGKILL)  # the last spawned: a pool worker running a job
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1, output
    assert "a worker process died" in output and "rerun the same command to resume" in output
    assert "Traceback" not in output
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    # All of it: 2 tuning runs (2 points) and the final one.
    assert len(list(results.rglob("seed*.json"))) == 3
