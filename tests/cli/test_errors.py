"""Bad input is one line before any work; records stay strict JSON; numbers are finite."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.runs.record import load_records, write_record

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], r"training recipe --lr: expected a finite number, got nan"),
    (["--lr", "-inf"], r"training recipe --lr: expected a finite number"),
    (["--weight-decay", "inf"], r"training recipe --weight-decay: expected a finite number"),
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
    assert empty.exit_code == 2 and "--tasks ,: give at least one name" in empty.output
    twice = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                "textures,textures", "--device", "cpu", "--results-dir", str(tmp_path)])
    assert twice.exit_code == 0 and "1 run, 0 skipped" in twice.output


def test_demo_checks_its_options_before_preparing_anything(tmp_path):
    data = tmp_path / "data"
    for args, message in ((["--device", "tpu"], "--device tpu: choose"), (["--methods", "lroa"], "unknown method 'lroa'")):
        result = runner.invoke(app, ["demo", "--data-dir", str(data), "--results-dir", str(tmp_path / "r"), *args])
        assert result.exit_code == 2 and message in result.output and not data.exists()


def test_results_from_other_prepared_data_never_share_a_row(env_data, tmp_path):
    """Prepare, run seed 1, re-prepare from another copy, run seed 2: refused; forced, the report
    shows two rows and says why."""
    import shutil

    from alore_bench.data.cache import write_task
    from alore_bench.data.demo import GENERATORS
    from alore_bench.data.suites import SUITES

    other = tmp_path / "other-data"
    shutil.copytree(env_data, other)
    task = SUITES.get("demo").task("textures")
    splits = {name: (255 - images, labels) for name, (images, labels) in GENERATORS[task.generator](task).items()}
    write_task(other, task, splits, source={"kind": "generated", "generator": task.generator})
    results = tmp_path / "results"
    base = ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "textures",
            "--epochs", "1", "--device", "cpu", "--results-dir", str(results)]
    assert runner.invoke(app, base + ["--seeds", "1", "--data-dir", str(env_data)]).exit_code == 0
    refused = runner.invoke(app, base + ["--seeds", "2", "--data-dir", str(other)])
    assert refused.exit_code == 2 and "seeds 1 of this configuration were made from different prepared data" \
        in refused.output and "--force --seeds 1,2" in refused.output
    assert len(list(results.rglob("seed*.json"))) == 1
    forced = runner.invoke(app, base + ["--seeds", "2", "--data-dir", str(other), "--force"])
    assert forced.exit_code == 0, forced.output
    report = runner.invoke(app, ["report", "--results-dir", str(results), "--format", "json"])
    rows = json.loads(report.output)["demo"]["final"]["rows"]
    assert len(rows) == 2 and sorted(len(r["seeds"]) for r in rows) == [1, 1]  # never averaged together
    assert {r["settings"]["data"] for r in rows} and len({r["settings"]["data"] for r in rows}) == 2
    notes = json.loads(report.output)["demo"]["final"]["notes"]
    assert any(n.startswith("split: demo_vit/lora@") and "2 different prepared data" in n for n in notes)


RUN = ["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "textures",
       "--device", "cpu"]


def test_a_results_path_that_is_a_file_is_refused_before_any_work(env_data, tmp_path):
    target = tmp_path / "results"
    target.write_text("not a folder")
    result = runner.invoke(app, RUN + ["--results-dir", str(target)])
    assert result.exit_code == 2 and f"--results-dir {target}: is a file" in result.output
    nested = runner.invoke(app, RUN + ["--results-dir", str(target / "inside")])
    assert nested.exit_code == 2 and f"cannot be made, {target} is a file" in nested.output
    assert target.read_text() == "not a folder"


def test_too_little_free_space_is_refused_before_training(env_data, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 2**20, 2**20))
    result = runner.invoke(app, RUN + ["--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 2 and "only 1 MiB free, a run needs at least 64 MiB" in result.output
    assert not list((tmp_path / "results").rglob("seed*.json"))


def test_a_full_disk_after_training_keeps_the_result_and_names_where(env_data, tmp_path, monkeypatch):
    import errno
    import tempfile

    from alore_bench.runs import runner as runner_module

    results = tmp_path / "results"
    original = runner_module.write_record

    def full_disk(path, record):
        if str(path).startswith(str(results)):
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, record)

    monkeypatch.setattr(runner_module, "write_record", full_disk)
    monkeypatch.setattr(runner_module.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    result = runner.invoke(app, RUN + ["--results-dir", str(results)])
    assert result.exit_code == 1 and "No space left on device" in result.output
    (rescued,) = (tmp_path / "tmp" / "alore-bench-rescued").rglob("seed42.json")
    assert str(rescued) in result.output.replace("\n", "") and json.loads(rescued.read_text())["status"] == "ok"
    assert not list(results.rglob("seed*.json")) and not list(results.rglob(".*.tmp-*"))


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid  # exited and reaped: no such process now


def _age(path, seconds: float = 3600) -> None:
    import os
    import time

    old = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (old, old))


def test_leftovers_of_killed_processes_are_cleaned_and_a_hidden_task_restored(env_data, tmp_path):
    import os
    import shutil

    data, results = tmp_path / "data", tmp_path / "results"
    shutil.copytree(env_data, data)
    dead = _dead_pid()
    # A kill between the two renames of `prepare --force`: the valid task sits aside, hidden.
    textures = data / "demo" / "textures"
    manifest = (textures / "manifest.json").read_text()
    hidden = textures.with_name(f".textures.old-{dead}")
    os.replace(textures, hidden)
    staging = data / "demo" / f".digits.tmp-{dead}"
    staging.mkdir()
    (staging / "train800.images.npy").write_bytes(b"partial")
    record_tmp = results / "demo" / "x" / f".seed1.json.tmp-{dead}"
    record_tmp.parent.mkdir(parents=True)
    record_tmp.write_text("{partial")
    fresh = record_tmp.with_name(f".seed2.json.tmp-{dead}")  # touched a moment ago: maybe another machine's
    fresh.write_text("{")
    live = record_tmp.with_name(f".seed3.json.tmp-{os.getpid()}")
    live.write_text("{")
    for path in (hidden, staging, record_tmp, live):
        _age(path)
    result = runner.invoke(app, RUN + ["--epochs", "1", "--data-dir", str(data), "--results-dir", str(results)])
    assert result.exit_code == 0, result.output
    assert f"restored {textures}" in result.output.replace("\n", "")
    assert (textures / "manifest.json").read_text() == manifest  # put back, not rebuilt
    assert not hidden.exists() and not staging.exists() and not record_tmp.exists()
    assert fresh.exists() and live.exists()


@pytest.mark.parametrize("seeds", ["99999999999999999999", "-1"])
def test_seeds_out_of_range_are_one_line(env_data, tmp_path, seeds):
    result = runner.invoke(app, RUN + ["--seeds", seeds, "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "seeds must lie in [0, 2^32)" in result.output


def test_prepare_into_a_data_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "data"
    target.write_text("a file")
    result = runner.invoke(app, ["prepare", "--suite", "demo", "--data-dir", str(target)])
    assert result.exit_code == 2 and f"--data-dir {target}: is a file" in result.output and target.read_text() == "a file"


def test_list_budgets_are_cached_per_code_version_and_equal_the_built_model(tmp_path, monkeypatch):
    from alore_bench import code_cache, params

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    params.trainable_without_head.cache_clear()
    first = params.vit_b16_trainable_without_head("lora")
    assert first == params.build_and_count("lora") == 294912  # NOAH's fused-qkv rank-8 LoRA: 0.29M
    params.trainable_without_head.cache_clear()
    monkeypatch.setattr(params, "build_and_count", lambda method, backbone="vit_b16": pytest.fail("rebuilt despite the cache"))
    assert params.vit_b16_trainable_without_head("lora") == first
    cache = code_cache.cache_path()
    stale = json.loads(cache.read_text())
    stale["code"], stale["budgets"]["lora"] = "other code", 1
    cache.write_text(json.dumps(stale))
    params.trainable_without_head.cache_clear()
    monkeypatch.setattr(params, "build_and_count", lambda method, backbone="vit_b16": 7)
    assert params.vit_b16_trainable_without_head("lora") == 7  # a cache of other code is never read
    params.trainable_without_head.cache_clear()


CPU_PEAK_SCRIPT = """
import resource
import numpy as np
import torch
from alore_bench.engine import PeakMemory

def rss():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024

before = rss()
big = np.ones(400 * 2**20 // 8)  # 400 MiB touched by an earlier run of the same process
del big
lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
assert lifetime >= before + 390 * 2**20, (lifetime, before)  # what the old measure would have reported at least
memory = PeakMemory(torch.device("cpu")).read()
assert memory["kind"] == "process_peak_rss_this_run", memory  # Linux: the peak is reset at the run's start
assert memory["peak_bytes"] < before + 200 * 2**20, (memory, before)
print("ok")
"""




def test_doctor_is_happy_after_the_demo_data_and_names_what_to_fix(env_data, tmp_path):
    results = tmp_path / "results"
    healthy = runner.invoke(app, ["doctor", "--data-dir", str(env_data), "--results-dir", str(results), "--json"])
    assert healthy.exit_code == 0, healthy.output
    report = json.loads(healthy.output)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and checks["suite demo"] == {"name": "suite demo", "status": "ok",
                                                     "detail": "4 of 4 tasks prepared"}
    assert checks["weights demo_vit"]["status"] == "ok" and checks["extra ray"]["detail"] == "installed"
    assert not results.exists()  # checking never creates folders
    leftover = results / "demo" / f".seed1.json.tmp-{_dead_pid()}"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{")
    _age(leftover)
    sick = runner.invoke(app, ["doctor", "--data-dir", str(env_data), "--results-dir", str(results)])
    assert sick.exit_code == 1 and "stale temporary files: 1 left by killed processes" in sick.output


@pytest.mark.parametrize("method", ["peft:vera", "peft:loha"])
def test_a_peft_rank_of_zero_is_one_line(env_data, tmp_path, method):
    result = runner.invoke(app, ["run", "--method", method, "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                 "digits", "--opt", "r=0", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and f"--opt r=0 (method {method}): the rank must be at least 1" in result.output


def test_error_messages_keep_their_brackets(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text('name = "x"\nsuite = "demo"\nseeds = [1]\nbackbones = ["demo_vit"]\n'
                     '[variants.alore]\ngrid = { lr = [nan] }\n')
    result = runner.invoke(app, ["study", "plan", str(study)])
    assert result.exit_code == 2
    assert f"{study} [variants.alore].grid lr: expected a finite number, got nan" in " ".join(result.output.split())


