"""The best-of-test diagnostic: `test_every` writes a test curve into final records, changes nothing
else a run computes, and nothing but `report --diagnostic best-of-test` reads it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import alore_bench as ab
from alore_bench.errors import UserError
from alore_bench.reporting.diagnostics import TITLE
from alore_bench.runs.spec import build_spec

PACKAGE = Path(ab.__file__).parent


def run_lora(results: Path, **extra):
    result = ab.run("lora", "demo_vit", "demo", tasks="digits", epochs=3, device="cpu", results_dir=results,
                    say=lambda line: None, **extra)
    assert result.ok
    (path,) = results.rglob("seed42.json")
    return json.loads(path.read_text())


def test_a_test_curve_is_recorded_and_changes_no_number_no_table(env_data, tmp_path):
    with_curve = run_lora(tmp_path / "curve", test_every=1)
    plain = run_lora(tmp_path / "plain")
    curve = with_curve["diagnostics"]["test_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3] and with_curve["diagnostics"]["split"] == "test"
    # The last point is the model before its merge; the record's top-1 is the merged model's.
    assert abs(curve[-1]["top1"] - with_curve["metrics"]["top1"]) < 0.5
    assert "diagnostics" not in plain
    for key in ("config_hash", "metrics", "params", "config"):
        assert with_curve[key] == plain[key], key
    assert [h["train_loss"] for h in with_curve["history"]] == [h["train_loss"] for h in plain["history"]]
    tables = [ab.report(tmp_path / name, fmt="md", say=lambda line: None).text for name in ("curve", "plain")]
    assert tables[0] == tables[1]  # the normal report is byte-identical with and without it
    diagnostic = ab.report(tmp_path / "curve", diagnostic="best-of-test", say=lambda line: None).text
    assert diagnostic.startswith(tables[0]) and TITLE in diagnostic and "NOT valid for claims" in diagnostic
    row = re.search(r"\| demo \| demo_vit \| lora \| \w+ \| digits \| 1 \| ([\d.]+) \| ([\d.]+) \| ([+-][\d.]+) \|",
                    diagnostic)
    best = max(p["top1"] for p in curve)
    assert row and float(row.group(2)) == pytest.approx(round(best, 1))
    assert float(row.group(3)) == pytest.approx(round(best - with_curve["metrics"]["top1"], 1), abs=0.11)
    with pytest.raises(UserError, match="no final record has a test curve"):
        ab.report(tmp_path / "plain", diagnostic="best-of-test", say=lambda line: None)


def test_only_the_diagnostic_report_reads_the_test_curve():
    """A guard: no selection, tuning, table or delta may read the curve. Only its writer (the trial)
    and the diagnostic table use its keys ("diagnostics", "test_curve") in code."""
    readers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if re.search(r"[\"'](test_curve|diagnostics)[\"']", p.read_text(encoding="utf-8")))
    assert readers == ["reporting/diagnostics.py", "runs/trial.py"]


@pytest.mark.parametrize("method, extra, message", [
    ("lora", {"stage": "tune"}, "a tune run must not see"),
    ("linear", {}, "no epochs to evaluate after"),
    ("lora", {"test_every": -1}, "give a number of epochs"),
])
def test_test_every_is_for_final_runs_that_train_in_epochs(tmp_path, method, extra, message):
    recipe = {"stage": extra.pop("stage")} if "stage" in extra else {}
    with pytest.raises(UserError, match=message):
        build_spec(method, "demo_vit", "demo", recipe=recipe, test_every=extra.get("test_every", 2),
                   data_dir=tmp_path, results_dir=tmp_path / "r", device="cpu")
