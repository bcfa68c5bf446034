"""Plugins (entry points and local files), `validate`, and the Python API. Installed plugins are
simulated with a .dist-info folder on PYTHONPATH, which importlib.metadata reads as pip's would be;
every CLI call is a fresh process, as a user's would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"
CLI = [str(Path(sys.executable).with_name("alore-bench"))]


def fake_distribution(site: Path, name: str, version: str, entry_points: dict) -> None:
    """What `pip install` leaves for importlib.metadata: NAME-VERSION.dist-info with entry points."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def cli(*args: str, site: Path, cache: Path, extra_path=(), check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *map(str, extra_path)]),
           "XDG_CACHE_HOME": str(cache), "COLUMNS": "250", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(CLI + list(args), env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def installed_example(tmp_path):
    site = tmp_path / "site"
    fake_distribution(site, "alore-scaled-bias", "0.1.0", {
        "alore_bench.methods": {"scaled_bias": "alore_scaled_bias:METHOD"},
        "alore_bench.suites": {"shapes2": "alore_scaled_bias:SUITE_FILE"}})
    return site


@pytest.mark.slow
def test_an_installed_plugin_lists_validates_runs_and_reports(installed_example, env_data, tmp_path):
    site, cache, results = installed_example, tmp_path / "cache", tmp_path / "results"
    run = dict(site=site, cache=cache, extra_path=[EXAMPLE])
    listed = cli("list", "methods", "--match", "scaled_bias", **run).stdout
    assert "scaled_bias" in listed and "165,888" in listed  # its budget on ViT-B/16: 2 x 6,912 per block x 12
    validated = cli("validate", "method", "scaled_bias", **run).stdout
    assert "plugin alore-scaled-bias" in validated and "6 of 6 checks passed" in validated
    cli("run", "--method", "scaled_bias", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits",
        "--epochs", "1", "--device", "cpu", "--results-dir", str(results), **run)
    (record_file,) = results.rglob("seed42.json")
    record = json.loads(record_file.read_text())
    assert record["plugins"]["method"]["distribution"] == "alore-scaled-bias"
    assert record["plugins"]["method"]["version"] == "0.1.0"
    assert record["metrics"]["merge_max_abs_logit_diff"] < 1e-3
    assert "Scaled bias" in cli("report", "--results-dir", str(results), "--suite", "demo", **run).stdout
    # The plugin's suite (prepared and run from the installed package in .ci/check_plugin) validates.
    cli("validate", "suite", str(EXAMPLE / "alore_scaled_bias" / "shapes2.toml"), **run)
    # Without the plugin, the built-ins are listed as before.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "scaled_bias" not in cli("list", "methods", site=empty, cache=cache).stdout


def test_broken_plugins_are_one_line_each_and_do_not_break_the_others(tmp_path):
    site = tmp_path / "site"
    (site / "alore_clash.py").parent.mkdir(parents=True, exist_ok=True)
    (site / "alore_clash.py").write_text(
        "import dataclasses\nfrom alore_bench.methods import METHODS\n"
        "METHOD = dataclasses.replace(METHODS.get('alore'), name='lora')\n")
    fake_distribution(site, "alore-broken", "1.0", {"alore_bench.methods": {
        "missing": "alore_not_installed_anywhere:METHOD", "clash": "alore_clash:METHOD"}})
    result = cli("list", "methods", "--match", "lora", site=site, cache=tmp_path / "cache")
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(problems) == 2, result.stderr
    missing = next(line for line in problems if "plugin missing" in line)
    assert "alore-broken" in missing and "ModuleNotFoundError" in missing
    clash = next(line for line in problems if "plugin clash" in line)
    assert "'lora' clashes with the built-in method" in clash
    assert "294,912" in result.stdout  # the built-in lora, untouched


FROZEN_BREAKER = '''
import torch
from dataclasses import dataclass
from torch import nn
from alore_bench.methods import METHODS
from alore_bench.methods.base import MethodSpec, freeze, replace_submodule, train_head


@dataclass(frozen=True)
class Config:
    rate: float = 0.01


class Drifting(nn.Module):
    """A bug a plugin could have: it nudges the frozen weight in place while training."""

    def __init__(self, base):
        super().__init__()
        self.base, self.gain = base, nn.Parameter(torch.ones(base.out_features))

    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.base.weight.mul_(0.999)
        return self.base(x) * self.gain


def apply(model, config):
    freeze(model)
    for name, module in list(model.named_modules()):
        if name.endswith("mlp.fc2"):
            replace_submodule(model, name, Drifting(module))
    train_head(model)
    return model


METHODS.register("drifting", MethodSpec(name="drifting", config_cls=Config, apply=apply, paper="a test",
                                        summary="changes frozen weights"))
'''


def test_validate_catches_a_method_that_changes_frozen_weights(tmp_path):
    plugin = tmp_path / "drifting.py"
    plugin.write_text(FROZEN_BREAKER)
    result = cli("--plugins", str(plugin), "validate", "method", "drifting", site=tmp_path, cache=tmp_path / "c",
                 check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"plugin {plugin}" in result.stdout
    assert "FAIL frozen weights and gradients: frozen weights changed by training: blocks.0.mlp.fc2.base.weight" in \
        result.stdout


def test_validate_suite_and_study_files(tmp_path):
    good = cli("validate", "study", str(ROOT / "studies" / "demo.toml"), site=tmp_path, cache=tmp_path / "c")
    assert "64 runs: ok" in good.stdout  # what `study plan` counts
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndescription = "x"\ngroups = ["A"]\n[[tasks]]\nname = "t"\n')
    result = cli("validate", "suite", str(bad), site=tmp_path, cache=tmp_path / "c", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {bad}: missing key 'source' (a suite needs name, "
                                                   "description, groups, source and [[tasks]])"]


def test_python_api_is_what_the_cli_calls(env_data, tmp_path):
    import alore_bench as ab

    summary = ab.run("alore", "demo_vit", suite="demo", tasks=["digits"], epochs=1, device="cpu",
                     data_dir=env_data, results_dir=tmp_path).summary
    assert len(summary.ran) == 1 and not summary.failed
    frame = ab.load_frame(tmp_path)
    assert list(frame["method"]) == ["alore"] and frame["top1"].notna().all()
    text = ab.render_markdown(ab.suite_table(frame, "demo"))
    assert "ALoRE" in text and "Digits" in text
    again = ab.run("alore", "demo_vit", suite="demo", tasks=["digits"], epochs=1, device="cpu",
                   data_dir=env_data, results_dir=tmp_path).summary
    assert len(again.skipped) == 1  # the same identity as the CLI's: an identical record is reused
    assert {r.check: r.ok for r in ab.validate_method("alore").results}["merge"]
