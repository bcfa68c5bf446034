"""`bench` measures each method in a fresh process against the references."""

from __future__ import annotations
import json
from typer.testing import CliRunner
from alore_bench.cli import app


def test_bench_measures_each_method_against_the_references(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "--backbone", "demo_vit", "--methods", "alore", "--steps", "1",
                                      "--batch-size", "2", "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = {row["method"]: row for row in data["rows"]}
    assert list(rows) == ["backbone", "floor", "alore"]
    assert rows["floor"]["ratios"]["step_vs_floor"] == 1.0 and rows["backbone"]["ratios"]["infer_vs_backbone"] == 1.0
    alore = rows["alore"]
    assert alore["trainable"] > 0 and rows["backbone"]["trainable"] == 0 and alore["gflops"] > 0
    assert alore["merged_ms"] > 0 and alore["ratios"]["merged_vs_backbone"] > 0  # mergeable: latency after merging
    assert rows["floor"]["merged_ms"] is None and alore["peak_bytes"] > 0
    assert data["settings"]["batch_size"] == 2 and data["machine"]
