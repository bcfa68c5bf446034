"""Study files: validation with one-line errors, the shipped studies, and a study run end to end
(tune -> select -> final seeds), idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.studies import demo_study, write_study
from alore_bench.cli import app
from alore_bench.errors import UserError
from alore_bench.execution.jobs import jobs_of
from alore_bench.study.expand import study_specs
from alore_bench.study.status import study_counts
from alore_bench.study.studyfile import load_study

runner = CliRunner()
STUDIES = Path(__file__).resolve().parents[3] / "studies"

MINIMAL = demo_study("mini", lora=False)


write = write_study


@pytest.mark.parametrize("name", sorted(p.name for p in STUDIES.glob("*.toml")))
def test_shipped_studies_load(name):
    study = load_study(STUDIES / name)
    specs = study_specs(study, None, Path("results"), "cpu")
    jobs = sum(len(jobs_of(stage)) for stage in specs.values())
    assert study.variants and sum(row["runs"] for row in study_counts(specs)) == jobs > 0


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('suite = "demo"', 'suite = "demo"\nseed = 1'), "unknown key 'seed'.*did you mean 'seeds'"),
    (lambda t: t.replace("grid = {", "gird = {"), r"unknown key 'gird' for .*\[variants.alore\]: did you mean 'grid'"),
    (lambda t: t.replace("lr = [1e-3, 1e-2]", "rank = [2, 4], lrr = [1e-3]"), "unknown grid key .*'lrr'.*did you mean 'lr'"),
    (lambda t: t.replace("lr = [1e-3, 1e-2]", "lr = [-1.0]"), r"lr must lie in \(0, 1000\]"),
    (lambda t: t.replace("epochs = 1", "epochs = 1\nlr = 1e-3"), "lr is both fixed and in the grid"),
    (lambda t: t.replace("seeds = [42, 44]", 'seeds = "vpt7"'), "unknown seed set 'vpt7'"),
    (lambda t: t.replace('["demo_vit"]', '["demo_vt"]'), "unknown backbone 'demo_vt'.*did you mean 'demo_vit'"),
    (lambda t: t.replace("[variants.alore]", "[variants.alore2]"), "unknown method 'alore2'"),
    (lambda t: t.replace("epochs = 1", "epochs = 0"), r"\[recipe\]: epochs must lie in \[1, 10000\]"),
    (lambda t: t + "\n[variants.lora]\noptions = { rnak = 2 }\n", "unknown option 'rnak'"),
    (lambda t: t.replace('tasks = ["textures"]', 'tasks = ["texture"]'), "unknown task"),
    (lambda t: t + "\n[executor]\nkind = \"slurm\"\n", "unknown executor 'slurm'"),
    (lambda t: t + "\n[executor]\neval_batch_size = 0\n",
     r"\[executor\] eval_batch_size: expected a number of images from 1 to 8192, got 0"),
    (lambda t: t.replace("name =", "nam ="), "missing `name`|unknown key 'nam'"),
    (lambda t: t + "\n[[", "not valid TOML"),
])
def test_bad_study_files_are_one_line_errors_naming_file_and_key(tmp_path, change, message):
    path = write(tmp_path, change(MINIMAL))
    with pytest.raises(UserError, match=message) as error:
        load_study(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    result = runner.invoke(app, ["study", "plan", str(path)])
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_study_run_tunes_selects_runs_final_seeds_and_is_idempotent(env_data, tmp_path):
    path = write(tmp_path, MINIMAL)
    plan = runner.invoke(app, ["study", "plan", str(path)])
    assert plan.exit_code == 0 and "4 runs in all" in plan.output  # 2 grid points x 1 task x 1 tuning seed + 2 seeds
    results = tmp_path / "results"
    first = runner.invoke(app, ["study", "run", str(path), "--results-dir", str(results), "--device", "cpu"])
    assert first.exit_code == 0, first.output
    records = [json.loads(p.read_text()) for p in results.rglob("seed*.json")]
    tune = [r for r in records if r["config"]["train"]["stage"] == "tune"]
    final = [r for r in records if r["config"]["train"]["stage"] == "final"]
    assert len(tune) == 2 and len(final) == 2 and all(r["variant"] == "alore" for r in records)
    best = max(tune, key=lambda r: (r["metrics"]["top1"], -r["tuning"]["point"]["lr"]))
    assert all(r["config"]["hparams"]["source"] == "tuned" and r["config"]["hparams"]["point"] == best["tuning"]["point"]
               for r in final)
    assert {r["seed"] for r in final} == {42, 44} and "Textures" in first.output
    again = runner.invoke(app, ["study", "run", str(path), "--results-dir", str(results), "--device", "cpu"])
    assert again.exit_code == 0 and " 0 failed" in again.output
    assert "0 run, 4 skipped, 0 failed" in again.output  # two grid points and the final runs: all recorded
    assert len(list(results.rglob("seed*.json"))) == 4
    status = runner.invoke(app, ["study", "status", str(path), "--results-dir", str(results)])
    assert status.exit_code == 0 and status.output.count("alore") == 2
    report = runner.invoke(app, ["study", "report", str(path), "--results-dir", str(results),
                                 "--out", str(tmp_path / "table.md")])
    assert report.exit_code == 0, report.output
    table = (tmp_path / "table.md").read_text()
    assert "| Demo ViT | ALoRE" in table and table.count("| Demo ViT |") == 1  # final rows only, no tuning rows


MULTI = '''
name = "multi"
suites = ["vtab1k", "fgvc"]
tasks = { vtab1k = ["cifar100", "dtd"], fgvc = ["cub"] }
backbones = ["vit_b16"]
seeds = "vpt3"
[variants.alore]
grid = { lr = [1e-3, 1e-2] }
[variants.vpt-fgvc]
method = "vpt_deep"
suites = ["fgvc"]
grid = { lr = [1e-2] }
[executor]
kind = "workers"
workers = 2
per_device = 4
'''


def test_a_study_spans_several_suites_with_their_own_tasks_and_variants(tmp_path):
    study = load_study(write(tmp_path, MULTI))
    assert study.suite_names == ("vtab1k", "fgvc") and study.tasks_of("fgvc") == ["cub200"]  # aliases resolved
    assert study.executor.kind == "workers" and study.executor.workers == 2 and study.executor.per_device == 4
    rows = {(r["suite"], r["variant"], r["stage"]): r["runs"]
            for r in study_counts(study_specs(study, tmp_path, tmp_path, "cpu"))}
    assert rows == {("vtab1k", "alore", "tune"): 4, ("vtab1k", "alore", "final"): 6,
                    ("fgvc", "alore", "tune"): 2, ("fgvc", "alore", "final"): 3,
                    ("fgvc", "vpt-fgvc", "tune"): 1, ("fgvc", "vpt-fgvc", "final"): 3}
    plan = runner.invoke(app, ["study", "plan", str(tmp_path / "study.toml")])
    assert plan.exit_code == 0 and "19 runs in all" in plan.output


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace('suites = ["vtab1k", "fgvc"]', 'suites = ["vtab1k", "fgvc"]\nsuite = "demo"'),
     "give `suite = .*` or `suites = .*` \\(one of them\\)"),
    (lambda t: t.replace('fgvc = ["cub"]', 'fgcv = ["cub"]'), "unknown suite of this study 'fgcv'.*did you mean 'fgvc'"),
    (lambda t: t.replace('suites = ["fgvc"]', 'suites = ["fgv"]'), r"\[variants.vpt-fgvc\].suites.*did you mean 'fgvc'"),
    (lambda t: t.replace('tasks = { vtab1k = ["cifar100", "dtd"], fgvc = ["cub"] }', 'tasks = ["cub"]'),
     "with several suites, give a table"),
    (lambda t: t.replace("workers = 2", "workers = 0"), r"\[executor\] workers: expected a whole number"),
    (lambda t: t.replace("per_device = 4", "per_devices = 4"), "unknown key 'per_devices'.*did you mean 'per_device'"),
])
def test_bad_multi_suite_study_files_are_one_line_errors(tmp_path, change, message):
    path = write(tmp_path, change(MULTI))
    with pytest.raises(UserError, match=message) as error:
        load_study(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_study_table_is_judged_on_the_studys_own_tasks(env_data, tmp_path):
    path = write(tmp_path, MINIMAL.replace("seeds = [42, 44]", "seeds = [42]"))
    results = tmp_path / "results"
    assert runner.invoke(app, ["study", "run", str(path), "--results-dir", str(results), "--device", "cpu"]).exit_code == 0
    # A run of the same configuration on another task must not leak into the study's table.
    other = runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                "digits", "--epochs", "1", "--device", "cpu", "--results-dir", str(results)])
    assert other.exit_code == 0
    report = runner.invoke(app, ["study", "report", str(path), "--results-dir", str(results),
                                 "--out", str(tmp_path / "table.json")])
    assert report.exit_code == 0, report.output
    table = json.loads((tmp_path / "table.json").read_text())["demo"]["final"]
    assert table["tasks"] == ["textures"] and "digits" not in table["columns"]
    (row,) = table["rows"]
    assert row["complete"] and row["cells"]["mean_tasks"]["mean"] == row["cells"]["textures"]["mean"]


def test_a_preset_with_a_recipe_fixes_what_a_grid_would_tune(tmp_path, monkeypatch):
    from alore_bench.presets import PRESETS, _parse

    preset = _parse('name = "demo_lr"\nmethod = "alore"\nsuite = "demo"\nsource = "a test"\ndescription = "d"\n'
                    '[tasks.textures.recipe]\nlr = 3e-3\n', "test")
    monkeypatch.setitem(PRESETS._entries, "demo_lr", preset)
    clashing = write(tmp_path, MINIMAL.replace("[variants.alore]\n", '[variants.alore]\npreset = "demo_lr"\n'))
    with pytest.raises(UserError, match=r"\[variants.alore\]: preset demo_lr sets lr per task; take it out of the grid"):
        load_study(clashing)
    fixed = write(tmp_path, MINIMAL.replace("[variants.alore]\ngrid = { lr = [1e-3, 1e-2] }",
                                            '[variants.alore]\npreset = "demo_lr"\ngrid = {}'))
    specs = study_specs(load_study(fixed), tmp_path, tmp_path, "cpu")
    jobs = {stage: jobs_of(specs[stage]) for stage in specs}
    assert jobs["tune"] == [] and len(jobs["final"]) == 2  # nothing to tune: the final seeds only
    assert all(not job.spec.use_tuned and job.spec.preset == "demo_lr" for job in jobs["final"])


def test_a_study_file_sets_the_evaluation_batch_and_the_command_line_overrides_it(tmp_path):
    path = write(tmp_path, MINIMAL + "\n[executor]\neval_batch_size = 64\n")
    study = load_study(path)
    assert study.eval_batch_size == 64
    specs = study_specs(study, None, tmp_path / "results", "cpu")
    assert specs["tune"] and specs["final"]
    assert {spec.eval_batch_size for stage in specs.values() for spec in stage} == {64}
    overridden = study_specs(study, None, tmp_path / "results", "cpu", eval_batch_size=512)
    assert {spec.eval_batch_size for stage in overridden.values() for spec in stage} == {512}
    # Nothing else differs (an execution setting: the records' configurations are the same).
    assert [s.replace(eval_batch_size=1) for s in specs["final"]] == \
        [s.replace(eval_batch_size=1) for s in overridden["final"]]
    assert load_study(write(tmp_path, MINIMAL, "plain.toml")).eval_batch_size == 256

    result = runner.invoke(app, ["study", "run", str(path), "--eval-batch-size", "0", "--results-dir",
                                 str(tmp_path / "results"), "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2 and "--eval-batch-size 0" in result.output
    assert not (tmp_path / "results").exists()  # refused before anything ran
