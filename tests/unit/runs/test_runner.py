"""The runner on its own: one job in, one outcome out, exactly one record written."""

from __future__ import annotations

import json

from alore_bench.engine import SilentProgress
from alore_bench.runs.preflight import preflight
from alore_bench.runs.runner import run_job
from alore_bench.runs.spec import build_spec


def spec_for(env_data, tmp_path, **changes):
    return build_spec("bitfit", "demo_vit", "demo", tasks="textures", recipe={"epochs": 1}, device="cpu",
                      data_dir=env_data, results_dir=tmp_path, **changes)


def test_a_job_runs_once_then_its_record_is_reused_and_force_reruns_it(env_data, tmp_path):
    spec = spec_for(env_data, tmp_path)
    checked = preflight(spec)
    assert set(checked.manifests) == {"textures"} and checked.weights.kind == "package"
    heard = []
    (job,) = spec.jobs()
    first = run_job(job, SilentProgress(), heard.append)
    assert first.status == "ran" and first.path.is_file() and heard == list(first.lines)
    record = json.loads(first.path.read_text())
    assert record["status"] == "ok" and record["seed"] == 42 and record["config"]["hparams"] == {"source": "default"}
    again = run_job(job, SilentProgress())
    assert again.status == "skipped" and again.path == first.path and "identical record exists" in again.lines[-1]
    forced = run_job(spec.replace(force=True).jobs()[0], SilentProgress())
    assert forced.status == "ran" and forced.path == first.path
    assert len(list(tmp_path.rglob("seed*.json"))) == 1


def test_saving_adapters_reruns_an_identical_job_that_saved_none(env_data, tmp_path):
    (job,) = spec_for(env_data, tmp_path).jobs()
    assert run_job(job, SilentProgress()).status == "ran"
    (with_adapter,) = spec_for(env_data, tmp_path, save_adapters=True).jobs()
    outcome = run_job(with_adapter, SilentProgress())
    assert outcome.status == "ran" and outcome.path.with_suffix(".safetensors").is_file()
    assert run_job(with_adapter, SilentProgress()).status == "skipped"
