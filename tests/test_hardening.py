"""Bad input is one line before any work; records stay strict JSON; numbers are finite."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.records import load_records, write_record

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], r"training recipe lr \(--lr\): expected a finite number, got nan"),
    (["--lr", "-inf"], r"lr \(--lr\): expected a finite number"),
    (["--weight-decay", "inf"], r"weight_decay \(--weight-decay\): expected a finite number"),
    (["--opt", "scale=nan"], r"--opt \(method alore\) scale: expected a finite number, got 'nan'"),
])
def test_numeric_options_must_be_finite(env_data, tmp_path, args, message):
    result = runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo",
                                 "--tasks", "digits", "--epochs", "1", "--results-dir", str(tmp_path), *args])
    assert result.exit_code == 2 and re.search(message, result.output), result.output
    assert len(result.output.strip().splitlines()) == 1 and not list(tmp_path.rglob("*.json"))


def test_records_are_strict_json_with_non_finite_values_flagged(tmp_path):
    path = tmp_path / "seed1.json"
    write_record(path, {"metrics": {"top1": float("nan"), "final_train_loss": float("inf")},
                        "history": [{"train_loss": 1.0}, {"train_loss": float("-inf")}]})
    record = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in a record"))
    assert record["metrics"] == {"top1": None, "final_train_loss": None}
    assert record["non_finite"] == ["metrics.top1", "metrics.final_train_loss", "history[1].train_loss"]
    assert record["history"][0]["train_loss"] == 1.0


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2, 3]", b"{broken"])
def test_records_that_are_not_utf8_json_objects_are_skipped_and_named(tmp_path, content):
    path = tmp_path / "demo" / "x" / "seed1.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    records, bad = load_records(tmp_path)
    assert records == [] and [p for p, _reason in bad] == [path]
    result = runner.invoke(app, ["report", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and f"warning: skipped {path}" in result.output


def test_version_and_shell_completion_are_offered():
    from alore_bench import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"alore-bench {__version__}"
    assert "--install-completion" in runner.invoke(app, ["--help"]).output


def test_task_lists_are_never_empty_and_never_repeat(env_data, tmp_path):
    empty = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo",
                                "--tasks", ",", "--results-dir", str(tmp_path)])
    assert empty.exit_code == 2 and "--tasks ',': give at least one name" in empty.output
    twice = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                "textures,textures", "--device", "cpu", "--results-dir", str(tmp_path)])
    assert twice.exit_code == 0 and "1 run, 0 skipped" in twice.output


def test_demo_checks_its_options_before_preparing_anything(tmp_path):
    data = tmp_path / "data"
    for args, message in ((["--device", "tpu"], "--device 'tpu'"), (["--methods", "lroa"], "unknown method 'lroa'")):
        result = runner.invoke(app, ["demo", "--data-dir", str(data), "--results-dir", str(tmp_path / "r"), *args])
        assert result.exit_code == 2 and message in result.output and not data.exists()


def test_demo_takes_methods_seeds_and_epochs(tmp_path):
    result = runner.invoke(app, ["demo", "--data-dir", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r"),
                                 "--methods", "linear", "--seeds", "42,44", "--epochs", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("seed*.json")]
    assert len(records) == 8 and {r["method"] for r in records} == {"linear"}
    assert {r["config"]["train"]["epochs"] for r in records} == {1}
