"""Every command is one API call: run both ways on the demo suite, the records (config hash,
top-1) and the tables are the same; what the command prints is what the API returned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import alore_bench as ab
from alore_bench import api
from alore_bench.cli import app
from alore_bench.cli.options import flag_style

runner = CliRunner()
QUICK = ["--suite", "demo", "--tasks", "textures", "--epochs", "1", "--device", "cpu"]


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def records(results: Path):
    out = {}
    for path in sorted(results.rglob("seed*.json")):
        record = json.loads(path.read_text())
        out[str(path.relative_to(results))] = (record["config_hash"], record["metrics"]["top1"],
                                               record["config"]["hparams"].get("source"))
    return out


def quiet(_line: str) -> None:
    pass


def test_prepare_both_ways_builds_the_same_cache(tmp_path):
    cli("prepare", "--suite", "demo", "--tasks", "textures", "--data-dir", str(tmp_path / "cli"))
    summary = api.prepare("demo", tasks=["textures"], data_dir=str(tmp_path / "api"), say=quiet)
    assert summary.prepared == ["textures"] and summary.root == tmp_path / "api" / "demo"
    manifests = [json.loads((tmp_path / side / "demo" / "textures" / "manifest.json").read_text())
                 for side in ("cli", "api")]
    assert [m["splits"] for m in manifests][0] == [m["splits"] for m in manifests][1]


def test_run_tune_and_the_tuned_run_write_the_same_records_both_ways(env_data, tmp_path):
    cli_dir, api_dir = tmp_path / "cli", tmp_path / "api"
    out = cli("tune", "--method", "lora", "--backbone", "demo_vit", *QUICK, "--grid", "lr=1e-3,1e-2",
              "--results-dir", str(cli_dir))
    tuned = api.tune("lora", "demo_vit", "demo", tasks=["textures"], epochs=1, device="cpu",
                     grid={"lr": [1e-3, 1e-2]}, results_dir=api_dir, say=quiet)
    (selection,) = tuned.selections
    assert selection.task == "textures" and selection.points == 2 and selection.point["lr"] in (1e-3, 1e-2)
    # The selection table prints the selected point and its validation top-1 for the task.
    row = next(line for line in out.splitlines() if line.startswith("│ textures"))
    assert f"lr={selection.point['lr']}" in row and f"{selection.val_top1:.2f}" in row and " 2 " in row
    cli("run", "--method", "lora", "--backbone", "demo_vit", *QUICK, "--results-dir", str(cli_dir))
    result = ab.run("lora", "demo_vit", "demo", tasks="textures", epochs=1, device="cpu", results_dir=str(api_dir),
                    say=quiet)
    assert result.ok and len(result.summary.ran) == 1
    assert records(cli_dir) == records(api_dir)
    finals = [v for v in records(api_dir).values() if v[2] == "tuned"]
    assert len(finals) == 1  # alore_bench.run used the tuned point, as `alore-bench run` does
    # Both ways report the same table, which says what `tuned` took for each task.
    table = cli("report", "--results-dir", str(cli_dir), "--format", "md")
    assert table == api.report(api_dir, fmt="md").text.replace(str(api_dir), str(cli_dir))
    assert f"selected on the tuning stage: textures lr={selection.point['lr']:g}" in table


def test_a_study_runs_the_same_jobs_both_ways(env_data, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('name = "mini"\nsuite = "demo"\ntasks = ["textures"]\nbackbones = ["demo_vit"]\n'
                     'seeds = [42]\n[recipe]\nepochs = 1\n[variants.lora]\ngrid = { lr = [1e-3] }\n')
    out = cli("study", "run", str(study), "--results-dir", str(tmp_path / "cli"), "--device", "cpu")
    result = api.study_run(study, results_dir=tmp_path / "api", device="cpu", say=quiet)
    assert result.ok and f"{result.summary.line()}" in out
    assert records(tmp_path / "cli") == records(tmp_path / "api") and len(records(tmp_path / "api")) == 2
    plan = api.study_plan(study)
    assert f"{plan.runs} runs in all" in cli("study", "plan", str(study))
    status = api.study_status(study, tmp_path / "api")
    assert [r["done"] for r in status.rows] == [1, 1]
    assert api.validate_study(study).summary == cli("validate", "study", str(study)).strip()


def test_listing_doctor_and_validation_print_what_the_api_returns(env_data, tmp_path):
    (suites,) = api.list_tables("suites")
    out = cli("list", "suites")
    assert all(row[0] in out for row in suites.rows)
    checks = api.doctor(results_dir=tmp_path, style=flag_style)  # parameters named as the command line names them
    doctor = runner.invoke(app, ["doctor", "--results-dir", str(tmp_path), "--json"])
    assert [c["name"] for c in json.loads(doctor.output)["checks"]] == [c.name for c in checks]
    validation = api.validate_method("bitfit")
    assert validation.ok and f"{len(validation.results)} of {len(validation.results)} checks passed" in \
        cli("validate", "method", "bitfit")


@pytest.mark.slow
def test_the_demo_both_ways(demo_data, tmp_path):
    # (The demo's --methods, --seeds and --epochs as well: linear only, two seeds, one epoch.) On the
    # session's prepared demo data: the probe's solved heads are kept there, so the L-BFGS grids
    # (45 s cold) are solved once per test session, not once more here.
    out = cli("demo", "--methods", "linear", "--seeds", "42,44", "--epochs", "1", "--device", "cpu",
              "--data-dir", str(demo_data), "--results-dir", str(tmp_path / "cli"))
    result = api.demo(data_dir=demo_data, results_dir=tmp_path / "api", methods="linear", seeds=(42, 44),
                      epochs=1, device="cpu", say=quiet)
    assert result.ok and records(tmp_path / "cli") == records(tmp_path / "api")
    assert "demo finished in" in out and "Linear" in out
    written = [json.loads(p.read_text()) for p in (tmp_path / "cli").rglob("seed*.json")]
    assert len(written) == 8 and {r["method"] for r in written} == {"linear"}
    assert {r["config"]["train"]["epochs"] for r in written} == {1}
