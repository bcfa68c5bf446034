"""Jobs and executors: a job is plain data, and the local, worker-process and Ray executors write
the same records (top-1 and configuration hash) for the same study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.support.studies import demo_study
from tests.support.studies import write_study as write_study_file
from alore_bench.cli import app
from alore_bench.errors import UserError
from alore_bench.execution.executors import cpu_threads, device_slots
from alore_bench.execution.jobs import jobs_of
from alore_bench.runs.spec import Job, RunSpec, build_spec
from alore_bench.study.expand import study_specs
from alore_bench.study.studyfile import load_study
from alore_bench.methods import METHODS
from alore_bench.tuning import make_grid

runner = CliRunner()

STUDY = demo_study("exec")


def write_study(tmp_path: Path, text: str = STUDY) -> Path:
    return write_study_file(tmp_path, text)


def records(results: Path) -> dict:
    """Record path -> (config hash, top-1, status) for every record under `results`."""
    out = {}
    for path in results.rglob("seed*.json"):
        record = json.loads(path.read_text())
        out[str(path.relative_to(results))] = (record["config_hash"], record["metrics"]["top1"], record["status"])
    return out


def test_a_job_is_plain_data_and_runs_the_spec_it_came_from(tmp_path):
    spec = METHODS.get("alore")
    grid = make_grid({"lr": [1e-3, 1e-2]}, spec, "test")
    run_spec = build_spec("alore", "demo_vit", "demo", tasks=["textures", "digits"], seeds=[42, 44],
                          recipe={"epochs": 2}, options=["experts=2"], data_dir=tmp_path / "data",
                          results_dir=tmp_path / "results", device="cpu", grid=grid, grid_index=1, variant="alore-e2")
    assert json.loads(json.dumps(run_spec.to_dict())) == run_spec.to_dict()
    assert RunSpec.from_dict(json.loads(json.dumps(run_spec.to_dict()))) == run_spec
    jobs = run_spec.jobs()
    assert [(j.task, j.seed) for j in jobs] == [("textures", 42), ("textures", 44), ("digits", 42), ("digits", 44)]
    for job in jobs:
        wire = json.loads(json.dumps(job.to_dict()))  # what goes to a worker process or a Ray task
        again = Job.from_dict(wire)
        assert again == job
        assert again.spec.method_config == run_spec.method_config and again.spec.train == run_spec.train
        assert again.spec.train.lr == 1e-2 and again.spec.stage == "tune"
        assert again.spec.grid == grid and again.spec.grid_index == 1 and again.spec.variant == "alore-e2"


def test_device_slots_pack_runs_per_gpu_and_split_cpu_cores(monkeypatch):
    assert device_slots("cpu", 3, 1) == ["cpu", "cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert device_slots("cuda", 4, 2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert device_slots("cuda:1", 2, 2) == ["cuda:1", "cuda:1"]
    with pytest.raises(UserError, match="workers=5 needs more slots than 2 GPU.*per_device=2"):
        device_slots("cuda", 5, 2)
    with pytest.raises(UserError, match="per_device=0"):
        device_slots("cuda", 1, 0)
    assert cpu_threads(1) >= cpu_threads(2) >= 1


def test_study_jobs_cover_every_suite_variant_point_task_and_seed(tmp_path):
    study = load_study(write_study(tmp_path))
    specs = study_specs(study, tmp_path / "data", tmp_path / "results", "cpu")
    jobs = {stage: jobs_of(specs[stage]) for stage in specs}
    assert len(jobs["tune"]) == 3 and len(jobs["final"]) == 4  # 2 + 1 grid points x 1 seed; 2 variants x 2 seeds
    assert {j.spec.stage for j in jobs["tune"]} == {"tune"} and all(j.spec.grid is not None for j in jobs["tune"])
    assert all(j.spec.use_tuned and j.spec.grid is None for j in jobs["final"])




def test_ray_executor_without_ray_installed_is_a_one_line_error(monkeypatch):
    import builtins

    from alore_bench.execution.executors import RayExecutor

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "ray" else real_import(name, *a, **k))
    with pytest.raises(UserError, match=r"executor='ray' needs Ray: pip install 'alore-bench\[ray\]'"):
        RayExecutor()




@pytest.mark.parametrize("options, message", [
    (["--executor", "slurm"], "'slurm' is not one of 'local', 'workers', 'ray'"),
    (["--workers", "0"], "--workers 0: give a number from 1 to 1024"),
    (["--log", "wandb"], "'wandb' is not one of 'tensorboard'"),
    (["--device", "cuda:x"], "--device cuda:x: choose auto, cpu, cuda or cuda:N"),
])
def test_bad_executor_options_are_one_line_errors(env_data, tmp_path, options, message):
    import re

    result = runner.invoke(app, ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                 "textures", "--epochs", "1", "--results-dir", str(tmp_path), *options])
    assert result.exit_code == 2 and re.search(message, result.output), result.output
    assert not list(tmp_path.rglob("seed*.json"))
