"""Worker processes write the records the local executor writes, for studies, tune and run."""

from __future__ import annotations

import json

from alore_bench.cli import app
from tests.unit.execution.test_executors import records, runner, write_study


def test_worker_processes_write_the_records_of_the_local_executor(env_data, tmp_path):
    """(The Ray executor gets the same check on the whole demo study in CI: .ci/check_study.)"""
    study = write_study(tmp_path)
    local = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "local"), "--device", "cpu"])
    assert local.exit_code == 0, local.output
    workers = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "workers"),
                                  "--device", "cpu", "--workers", "2"])
    assert workers.exit_code == 0, workers.output
    expected = records(tmp_path / "local")
    assert len(expected) == 7 and all(status == "ok" for _h, _t, status in expected.values())
    assert records(tmp_path / "workers") == expected  # same files, same configuration hashes, same top-1
    again = runner.invoke(app, ["study", "run", str(study), "--results-dir", str(tmp_path / "workers"),
                                "--device", "cpu", "--workers", "2"])
    assert again.exit_code == 0 and "0 run, 7 skipped, 0 failed" in again.output


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
