"""Tuning on the validation split and the selection of tuned hyper-parameters for final runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.errors import UserError
from alore_bench.methods import METHODS
from alore_bench.tuning import parse_grid_options, select

runner = CliRunner()
ALORE = METHODS.get("alore")


def test_grid_points_in_declared_order_with_values_checked():
    grid = parse_grid_options(["lr=1e-3,1e-2", "scale=0.1,10"], ALORE)
    assert grid.points() == [{"lr": 1e-3, "scale": 0.1}, {"lr": 1e-3, "scale": 10.0},
                             {"lr": 1e-2, "scale": 0.1}, {"lr": 1e-2, "scale": 10.0}]
    with pytest.raises(UserError, match="did you mean 'scale'"):
        parse_grid_options(["scal=1"], ALORE)
    with pytest.raises(UserError, match="expected a number"):
        parse_grid_options(["lr=fast"], ALORE)
    with pytest.raises(UserError, match="given twice"):
        parse_grid_options(["lr=1e-3", "lr=1e-2"], ALORE)
    with pytest.raises(UserError, match=r"lr must lie in \(0, 1000\]"):
        parse_grid_options(["lr=0"], ALORE)


def _tuning_record(task, index, point, top1, seed=1, base="b"):
    return {"status": "ok", "task": task, "seed": seed, "metrics": {"top1": top1},
            "tuning": {"base": base, "index": index, "point": point}}


def test_selection_is_the_best_mean_with_ties_to_smaller_lr_then_grid_order():
    records = [_tuning_record("t", 0, {"lr": 1e-2}, 80), _tuning_record("t", 0, {"lr": 1e-2}, 60, seed=2),
               _tuning_record("t", 1, {"lr": 1e-3}, 70), _tuning_record("t", 1, {"lr": 1e-3}, 70, seed=2),
               _tuning_record("t", 2, {"lr": 1e-4}, 65), _tuning_record("other", 2, {"lr": 1e-4}, 99),
               _tuning_record("t", 3, {"lr": 1e-5}, 99, base="another configuration")]
    chosen = select(records, "t", "b")
    assert chosen.point == {"lr": 1e-3} and chosen.val_top1 == 70 and chosen.seeds == 2  # 70 ties 70: smaller lr
    assert [s["val_top1"] for s in chosen.scores] == [70, 70, 65]
    tie = [_tuning_record("t", 0, {"scale": 1.0}, 50), _tuning_record("t", 1, {"scale": 0.1}, 50)]
    assert select(tie, "t", "b").index == 0  # no lr: the grid's order
    assert select(records, "missing", "b") is None


def _tune(tmp_path, *extra):
    return runner.invoke(app, ["tune", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo",
                               "--tasks", "textures", "--epochs", "1", "--results-dir", str(tmp_path / "r"),
                               "--device", "cpu", *extra])


def _run(tmp_path, *extra):
    return runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "demo",
                               "--tasks", "textures", "--epochs", "1", "--results-dir", str(tmp_path / "r"),
                               "--device", "cpu", *extra])


def _records(tmp_path, stage):
    found = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("seed*.json")]
    return [r for r in found if r["config"]["train"]["stage"] == stage]


def test_tune_then_run_uses_the_selected_point_and_says_so(env_data, tmp_path):
    result = _tune(tmp_path, "--grid", "lr=1e-3,1e-2", "--grid", "scale=1,10")
    assert result.exit_code == 0, result.output
    tuned = _records(tmp_path, "tune")
    assert len(tuned) == 4 and {r["protocol"]["eval_split"] for r in tuned} == {"val200"}
    assert all(r["tuning"]["grid"] == {"lr": [1e-3, 1e-2], "scale": [1.0, 10.0]} for r in tuned)
    best = max(tuned, key=lambda r: (r["metrics"]["top1"], -r["tuning"]["point"]["lr"], -r["tuning"]["index"]))
    assert "selected" in result.output

    again = _tune(tmp_path, "--grid", "lr=1e-3,1e-2", "--grid", "scale=1,10")
    assert again.exit_code == 0 and "0 run, 4 skipped" in again.output  # resumable

    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    (final,) = _records(tmp_path, "final")
    hparams = final["config"]["hparams"]
    assert hparams["source"] == "tuned" and hparams["point"] == best["tuning"]["point"]
    assert hparams["val_top1"] == best["metrics"]["top1"] and len(hparams["scores"]) == 4
    assert final["config"]["train"]["lr"] == best["tuning"]["point"]["lr"]
    assert final["config"]["method_for_task"]["scale"] == best["tuning"]["point"]["scale"]
    assert final["protocol"]["eval_split"] == "test"

    result = _run(tmp_path, "--no-tuned")
    assert result.exit_code == 0, result.output
    default = [r for r in _records(tmp_path, "final") if r["config"]["hparams"]["source"] == "default"]
    assert len(default) == 1 and default[0]["config"]["train"]["lr"] == 1e-2  # the demo recipe's lr


def test_no_tuning_or_selection_path_reads_a_test_split(env_data, tmp_path, monkeypatch):
    import alore_bench.data.cache as cache
    import alore_bench.runs.artifacts as artifacts
    import alore_bench.runs.trial as trial

    real = cache.load_split
    opened = []

    def guarded(data_dir, task, split):
        opened.append(split)
        if split == "test":
            raise AssertionError(f"the tuning path opened the test split of {task.name}")
        return real(data_dir, task, split)

    monkeypatch.setattr(cache, "load_split", guarded)
    monkeypatch.setattr(artifacts, "load_split", guarded)
    monkeypatch.setattr(trial, "load_split", guarded)
    # linear: its L-BFGS probe also chooses its L2 strength. Digits: its grid solves in about a second
    # (textures' weak penalties take 25 s), and any task shows which splits the path opens.
    for method in ("alore", "linear"):
        result = runner.invoke(app, ["tune", "--method", method, "--backbone", "demo_vit", "--suite", "demo",
                                     "--tasks", "digits", "--epochs", "1", "--results-dir", str(tmp_path / "r"),
                                     "--device", "cpu", "--grid", "lr=1e-3,1e-2"])
        assert result.exit_code == 0, result.output
    assert set(opened) == {"train800", "val200"}


def test_grid_keys_fixed_on_the_command_line_are_not_tuned(env_data, tmp_path):
    result = _tune(tmp_path, "--grid", "scale=1,10", "--opt", "scale=2")
    assert result.exit_code == 2 and "scale is given both as a fixed value and in --grid" in result.output
    assert _tune(tmp_path, "--grid", "lr=1e-3,1e-2").exit_code == 0
    result = _run(tmp_path, "--lr", "1e-3")
    assert result.exit_code == 0 and "tuned values not used: lr" in result.output
    (final,) = _records(tmp_path, "final")
    assert final["config"]["hparams"] == {"source": "command line", "keys": ["lr"]}


def test_final_run_is_redone_when_tuning_selects_another_point_later(env_data, tmp_path):
    assert _tune(tmp_path, "--grid", "lr=1e-3,1e-2").exit_code == 0
    assert _run(tmp_path).exit_code == 0
    (first,) = _records(tmp_path, "final")
    chosen = first["config"]["hparams"]["point"]
    # Another point's validation score changes (e.g. a tuning seed was added): the selection moves.
    other = next(p for p in (tmp_path / "r").rglob("seed*.json")
                 if json.loads(p.read_text()).get("tuning", {}).get("point", chosen) != chosen)
    record = json.loads(other.read_text())
    record["metrics"]["top1"] = 100.0
    other.write_text(json.dumps(record))
    result = _run(tmp_path)
    assert result.exit_code == 0 and "1 run, 0 skipped" in result.output
    (again,) = _records(tmp_path, "final")
    assert again["config"]["hparams"]["point"] == record["tuning"]["point"] != chosen
    assert "0 run, 1 skipped" in _run(tmp_path).output
