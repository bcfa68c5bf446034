"""Records: schema, skip on identical config, never overwrite on change, --force, determinism."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.runs.record import RECORD_SCHEMA

runner = CliRunner()


def run(results: Path, *extra: str):
    args = ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits",
            "--epochs", "1", "--batch-size", "100", "--device", "cpu", "--results-dir", str(results), *extra]
    return runner.invoke(app, args)


def first_record_edited(results: Path, edit) -> tuple:
    """Run once, apply `edit` to the written record on disk; returns (path, edited record)."""
    assert run(results).exit_code == 0
    path = only_record(results)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    return path, record


def only_record(results: Path) -> Path:
    paths = sorted(results.rglob("seed*.json"))
    assert len(paths) == 1, paths
    return paths[0]


def test_record_schema(env_data, tmp_path):
    assert run(tmp_path).exit_code == 0
    path = only_record(tmp_path)
    record = json.loads(path.read_text())
    assert record["schema"] == RECORD_SCHEMA and record["status"] == "ok"
    assert path.relative_to(tmp_path).parts[:3] == ("demo", "demo_vit", f"alore-{record['config_hash']}")
    for key in ("suite", "task", "group", "backbone", "method", "seed", "created"):
        assert record[key] is not None
    assert record["group"] == "Natural" and record["seed"] == 42
    assert record["config"]["method"] == {"experts": 4, "rank": 4, "scale": 1.0, "sites": "both", "rules": "shared",
                                          "rule_init": "identity", "rule_noise": 0.02, "zero_factor": "down",
                                          "placement": "sequential", "dropout": 0.0}
    assert record["config"]["train"]["epochs"] == 1 and record["config"]["train"]["batch_size"] == 100
    protocol = record["protocol"]
    assert protocol["selection"] == "last_epoch"
    assert (protocol["train_split"], protocol["eval_split"]) == ("train800val200", "test")
    assert protocol["normalisation"]["name"] == "backbone" and protocol["preset"]["name"] == "native"
    assert protocol["backbone_mode_in_training"] == "train" and protocol["antialias"] is True
    assert protocol["weights"]["kind"] == "package" and len(protocol["weights"]["sha256"]) == 64
    assert protocol["data_source"]["kind"] == "generated"
    assert protocol["eval_model"] == "merged"
    metrics = record["metrics"]
    assert 0 <= metrics["top1"] <= 100 and metrics["eval_examples"] == 1594
    assert metrics["merge_max_abs_logit_diff"] < 1e-4
    params = record["params"]
    # 8 sites x 2 x 64 x 4 + 4^3 rules; head 64 x 10 + 10.
    assert params["trainable_without_head"] == 8 * 2 * 64 * 4 + 64
    assert params["head"] == 64 * 10 + 10
    assert params["inference_total"] == params["backbone_total"] + params["head"]
    assert record["timing"]["train_seconds"] > 0 and record["timing"]["steps"] == 10
    (epoch,) = record["history"]  # one entry per epoch: mean train loss, lr at its end, seconds so far
    assert epoch["epoch"] == 1 and epoch["train_loss"] == metrics["final_train_loss"]
    assert epoch["lr"] > 0 and 0 < epoch["seconds"] <= record["timing"]["train_seconds"]
    assert record["memory"]["peak_bytes"] > 0
    env = record["env"]
    for key in ("python", "torch", "timm", "peft", "alore_bench", "device", "git_commit"):
        assert key in env


def test_identical_config_skips_changed_config_never_overwrites_force_reruns(env_data, tmp_path):
    first, marked = first_record_edited(tmp_path, lambda r: r.update(marker="written by the first run"))
    first_text = first.read_text()

    again = run(tmp_path)
    assert again.exit_code == 0 and "skip digits seed 42" in again.output
    assert first.read_text() == first_text

    changed = run(tmp_path, "--lr", "0.002")
    assert changed.exit_code == 0
    paths = sorted(tmp_path.rglob("seed*.json"))
    assert len(paths) == 2 and first in paths and first.read_text() == first_text
    other = next(p for p in paths if p != first)
    assert json.loads(other.read_text())["config"]["train"]["lr"] == 0.002

    forced = run(tmp_path, "--force")
    assert forced.exit_code == 0 and "skip digits" not in forced.output
    rerun = json.loads(first.read_text())
    assert "marker" not in rerun and rerun["status"] == "ok"
    assert rerun["metrics"]["top1"] == marked["metrics"]["top1"]  # same config, same seed, same number


def test_record_from_other_data_is_not_reused(env_data, tmp_path):
    first_record_edited(tmp_path, lambda r: r["protocol"]["data_fingerprint"].update(test="0" * 33))
    result = run(tmp_path)
    assert result.exit_code == 2 and "different prepared data" in result.output


def test_failed_record_is_rerun(env_data, tmp_path):
    path, _ = first_record_edited(tmp_path, lambda r: r.update(status="failed"))
    result = run(tmp_path)
    assert result.exit_code == 0 and "skip digits" not in result.output
    assert json.loads(path.read_text())["status"] == "ok"


def test_same_seed_same_numbers(env_data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run(a).exit_code == 0 and run(b).exit_code == 0
    ra, rb = (json.loads(only_record(p).read_text())["metrics"] for p in (a, b))
    assert ra["top1"] == rb["top1"] and ra["final_train_loss"] == rb["final_train_loss"]
    c = tmp_path / "c"
    assert runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                               "digits", "--epochs", "1", "--batch-size", "100", "--device", "cpu",
                               "--results-dir", str(c), "--seeds", "7"]).exit_code == 0
    rc = json.loads(sorted(c.rglob("seed7.json"))[0].read_text())["metrics"]
    assert rc["final_train_loss"] != ra["final_train_loss"]


def test_saved_adapter_reloads_into_a_fresh_model(env_data, tmp_path):
    import torch

    from alore_bench.backbones import BACKBONES
    from alore_bench.methods import METHODS
    from alore_bench.methods.base import load_adapter

    assert run(tmp_path, "--save-adapters").exit_code == 0
    path = only_record(tmp_path)
    record = json.loads(path.read_text())
    adapter = path.with_name(record["adapter_file"])
    spec = METHODS.get("alore")
    model = spec.apply(BACKBONES.get("demo_vit").create(num_classes=10), spec.config_from_dict(record["config"]["method"]))
    metadata = load_adapter(model, adapter)
    assert metadata["method"] == "alore"
    rules = model.alore_rules.weight
    assert not torch.equal(rules, torch.eye(4).expand(4, 4, 4))  # trained values, not the init


def test_recipe_fields_added_later_keep_earlier_hashes_at_their_old_behaviour():
    """flip, grad_clip, optimizer, momentum, head_init and the schedule, dropout, EMA and crop fields
    came after records existed: at the values
    those records were trained with they stay out of the identity (same hash); any other value is in it."""
    import dataclasses

    from alore_bench.config import TrainConfig, config_to_dict, stable_hash
    from alore_bench.runs.record import LATER_TRAIN_DEFAULTS, config_identity

    weights = {"kind": "file", "sha256": "ab" * 32, "location": "x"}
    train = config_to_dict(TrainConfig())
    # The fields marked added_later in TrainConfig, at the behaviour records had before them.
    assert LATER_TRAIN_DEFAULTS == {"flip": False, "grad_clip": 0.0, "optimizer": "adamw", "momentum": 0.9,
                                    "head_init": "timm", "lr_step": "iteration", "warmup_inside": False,
                                    "cooldown_epochs": 0, "dropout": 0.0, "ema_decay": 0.0,
                                    "train_crop": "protocol"}
    assert {k: train[k] for k in LATER_TRAIN_DEFAULTS} == LATER_TRAIN_DEFAULTS
    earlier = {k: v for k, v in train.items() if k not in LATER_TRAIN_DEFAULTS}  # a record's recipe before them
    now = config_identity("demo", "demo_vit", "lora", {}, train, weights)
    assert stable_hash(now) == stable_hash(config_identity("demo", "demo_vit", "lora", {}, earlier, weights))
    for change in ({"flip": True}, {"grad_clip": 1.0}, {"optimizer": "sgd"}, {"momentum": 0.5}, {"head_init": "zero"},
                   {"lr_step": "epoch"}, {"warmup_inside": True}, {"cooldown_epochs": 10}, {"dropout": 0.1},
                   {"ema_decay": 0.999}, {"train_crop": "random_resized"}):
        other = config_to_dict(dataclasses.replace(TrainConfig(), **change))
        assert stable_hash(config_identity("demo", "demo_vit", "lora", {}, other, weights)) != stable_hash(now)
