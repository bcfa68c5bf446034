"""Every registered method runs end to end on the demo suite and is reported (a long test)."""

from __future__ import annotations
import json
from tests.cli.test_commands import TINY, invoke, one_line_error, runner  # noqa: F401


def test_every_registered_method_runs_on_the_demo_suite_and_is_reported(env_data, tmp_path):
    from alore_bench.methods import METHODS

    results = tmp_path / "results"
    for method in METHODS:
        result = invoke("run", "--method", method, "--backbone", "demo_vit", "--suite", "demo",
                        "--tasks", "count_shapes", "--results-dir", str(results), *TINY)
        assert result.exit_code == 0, (method, result.output)
    records = [json.loads(p.read_text()) for p in results.rglob("seed42.json")]
    assert sorted(r["method"] for r in records) == sorted(METHODS)
    for record in records:
        spec = METHODS.get(record["method"])
        assert record["protocol"]["eval_model"] == ("merged" if spec.mergeable else "as_trained")
        if spec.mergeable:
            assert record["metrics"]["merge_max_abs_logit_diff"] < 1e-4
            assert record["params"]["inference_total"] == record["params"]["backbone_total"] + record["params"]["head"]
    report = invoke("report", "--results-dir", str(results), "--format", "csv")
    assert report.exit_code == 0
    for method in METHODS:
        assert f",{method}," in report.output
