"""`alore-bench bench`: every method measured in its own process, ratios against the references."""

from __future__ import annotations


from typer.testing import CliRunner

from alore_bench.costs import BenchSettings, measure
from alore_bench.cli import app




def test_floor_trains_only_the_head_and_the_position_embedding():
    row = measure(BenchSettings(backbone="demo_vit", steps=1, batch_size=2, classes=10), "floor")
    assert row["trainable"] == 64 * 10 + 10 + 65 * 64  # head, plus the (1 + 64)-token position embedding


def test_bench_bad_options_are_one_line(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--backbone", "demo_vit", "--methods", "alroe"])
    assert result.exit_code == 2 and "did you mean 'alore'" in result.output
    result = CliRunner().invoke(app, ["bench", "--backbone", "demo_vit", "--json", str(tmp_path)])
    assert result.exit_code == 2 and "is a folder" in result.output
