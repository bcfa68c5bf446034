"""The CLI through typer's CliRunner: list, run, report, and the one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alore_bench.cli import app

runner = CliRunner()
TINY = ["--epochs", "1", "--batch-size", "128", "--device", "cpu"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.output.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.output
    return " ".join(result.output.split())


def test_list_methods_shows_budgets():
    result = invoke("list", "methods")
    assert result.exit_code == 0, result.output
    assert "147,520" in result.output and "294,912" in result.output


@pytest.mark.parametrize("what,needle", [("suites", "vtab1k"), ("backbones", "vit_b16")])
def test_list_registries(what, needle):
    result = invoke("list", what)
    assert result.exit_code == 0 and needle in result.output


def test_unprepared_vtab_names_prepare_command(tmp_path, monkeypatch):
    monkeypatch.setenv("ALORE_BENCH_DATA", str(tmp_path / "nothing"))
    message = one_line_error(invoke("run", "--method", "alore", "--backbone", "vit_b16"))
    assert "alore-bench prepare --suite vtab1k" in message


def test_missing_weights_after_data_is_checked(env_data, tmp_path):
    message = one_line_error(invoke("run", "--method", "alore", "--backbone", "vit_b16", "--suite", "demo",
                                    "--results-dir", str(tmp_path)))
    assert "ViT-B_16.npz" in message and "--weights" in message


@pytest.mark.parametrize("args,needle", [
    (["--method", "aloer", "--backbone", "demo_vit"], "did you mean 'alore'"),
    (["--method", "alore", "--backbone", "vit_b61"], "did you mean 'vit_b16'"),
    (["--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digit"], "did you mean 'digits'"),
    (["--method", "alore", "--backbone", "demo_vit", "--suite", "dmeo"], "did you mean 'demo'"),
    (["--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--opt", "rnak=2"], "did you mean 'rank'"),
    (["--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--opt", "experts=x"], "expected an integer"),
    (["--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--seeds", "a"], "--seeds"),
    (["--method", "vpt_deep", "--backbone", "demo_vit", "--suite", "demo", "--opt", "task_lengths=cifar100:5"],
     "not tasks of suite demo"),
])
def test_bad_names_and_options(env_data, tmp_path, args, needle):
    message = one_line_error(invoke("run", *args, "--results-dir", str(tmp_path)))
    assert needle in message


def test_experts_not_dividing_width_is_a_clear_error(env_data, tmp_path):
    message = one_line_error(invoke("run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo",
                                    "--tasks", "digits", "--opt", "experts=5", "--results-dir", str(tmp_path), *TINY))
    assert "experts=5 must divide the layer width 64" in message


def test_run_then_report(env_data, tmp_path):
    results = tmp_path / "results"
    for method in ("linear", "alore"):
        result = invoke("run", "--method", method, "--backbone", "demo_vit", "--suite", "demo",
                        "--results-dir", str(results), *TINY)
        assert result.exit_code == 0, result.output
    records = sorted(results.rglob("seed42.json"))
    assert len(records) == 8
    result = invoke("report", "--results-dir", str(results), "--format", "md")
    assert result.exit_code == 0, result.output
    assert "| Demo ViT | ALoRE |" in result.output and "Structured mean" in result.output
    # The terminal view fits the terminal and says what it left out; --wide and files keep every column.
    narrow = runner.invoke(app, ["report", "--results-dir", str(results)], env={"COLUMNS": "120"})
    assert narrow.exit_code == 0 and max(map(len, narrow.output.splitlines())) <= 120, narrow.output
    text = " ".join(narrow.output.split())
    assert "left out here:" in text and "Config" in text and "Natural mean" not in text  # one task: no mean
    wide = runner.invoke(app, ["report", "--results-dir", str(results), "--wide"], env={"COLUMNS": "400"})
    assert wide.exit_code == 0 and "Natural mean" in wide.output and "left out" not in wide.output
    out = tmp_path / "table.csv"
    result = invoke("report", "--results-dir", str(results), "--out", str(out))
    assert result.exit_code == 0 and out.read_text().startswith("suite,stage,kind,backbone,method")


def test_report_without_results_is_an_error(tmp_path):
    message = one_line_error(invoke("report", "--results-dir", str(tmp_path / "none")))
    assert "alore-bench run" in message


def test_prepare_skips_prepared_tasks(tmp_path):
    result = invoke("prepare", "--suite", "demo", "--data-dir", str(tmp_path), "--tasks", "textures")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "demo" / "textures" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["count"] == 1000
    again = invoke("prepare", "--suite", "demo", "--data-dir", str(tmp_path), "--tasks", "textures")
    assert "already prepared (--force rebuilds)" in again.output  # the core's fields read as flags
    # Nothing but the words: no empty line from a progress bar that no terminal shows.
    assert all(line.strip() for line in again.output.splitlines()), again.output


@pytest.mark.parametrize("args,needle", [
    (["--suite", "vtab1k", "--source", "folder"], "--source folder needs a path"),
    (["--suite", "vtab1k", "--source", "csv"], "Invalid value for '--source': 'csv' is not one of 'tfds', 'folder'"),
    (["--suite", "vtab1k", "--source", "json", "x"], "--source json: suite vtab1k can be prepared from tfds, folder"),
    (["--suite", "demo", "--source", "tfds"], "can be prepared from generated"),
    (["--suite", "vtab1k", "--source", "tfds", "somewhere"], "only goes with --source folder or json"),
])
def test_prepare_source_errors(tmp_path, args, needle):
    message = one_line_error(invoke("prepare", *args, "--data-dir", str(tmp_path)))
    assert needle in message


def test_failed_tfds_download_is_reported_and_other_tasks_go_on(tmp_path, monkeypatch, tfds_online):
    from tensorflow_datasets.core import dataset_builder

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(dataset_builder.DatasetBuilder, "download_and_prepare", offline)
    result = invoke("prepare", "--suite", "vtab1k", "--tasks", "cifar,svhn", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "vtab1k/cifar100 here: TFDS could not download or prepare cifar100:3.*.* (ConnectionError" in text
    assert "2 not prepared" in text and "--source folder PATH" in text




def test_list_methods_with_wildcard_and_options():
    result = invoke("list", "methods", "--match", "peft:*", "--options")
    assert result.exit_code == 0, result.output
    assert "peft:vera" in result.output and "alore" not in result.output.split("method options")[0]
    assert "rank_dropout" in result.output
    alore = invoke("list", "methods", "--match", "alore", "--options").output
    assert "experts" in alore
    # Each option's allowed values, read from its annotation: every choice of a Literal, or the type.
    rules = next(line for line in alore.splitlines() if "│ rules " in line)
    assert "shared | per_layer | per_site | fixed" in rules
    assert "integer" in next(line for line in alore.splitlines() if "│ rank " in line)


def test_choices_on_the_command_line_are_the_definitions_they_choose_among():
    from alore_bench.cli import options
    from alore_bench.reporting.build import FORMATS, STAGES
    from alore_bench.reporting.render import FITS

    assert [c.value for c in options.ReportStage] == list(STAGES)
    assert sorted(c.value for c in options.ReportFormat) == sorted(set(FORMATS.values()))
    assert [c.value for c in options.LatexFit] == list(FITS)
    assert [c.value for c in options.Protocol] == ["auto", "vpt", "noah", "native"]
    assert [c.value for c in options.ExecutorKind] == ["local", "workers", "ray"]


@pytest.mark.parametrize("command, option, needle", [
    (["run"], "--device", "cuda:N"), (["tune"], "--device", "cuda:N"), (["report"], "--results-dir", "read and written"),
    (["study", "run"], "--results-dir", "read and written")])
def test_help_says_what_an_option_takes(command, option, needle):
    out = " ".join(invoke(*command, "--help").output.split())
    assert needle in out[out.index(option):out.index(option) + 200]


def test_list_never_cuts_the_names_a_user_copies():
    narrow = runner.invoke(app, ["list", "backbones"], env={"COLUMNS": "90"})
    assert narrow.exit_code == 0
    from alore_bench.backbones import BACKBONES

    for name in BACKBONES:
        assert f"│ {name}" in narrow.output, name
