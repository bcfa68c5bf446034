"""Commands that train nothing start without the training stack: torch, timm and peft are blocked
(tests/support/no_torch.py) and the command must still do its work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import alore_bench as ab

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def records(demo_data, tmp_path_factory):
    """Two methods' records on the demo suite, and a code cache warmed by writing them."""
    base = tmp_path_factory.mktemp("startup")
    cache = base / "cache"
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        for method in ("linear", "bitfit"):
            ab.run(method, "demo_vit", suite="demo", tasks=["digits", "textures"], data_dir=demo_data,
                   results_dir=base / "results", epochs=1, batch_size=128, device="cpu")
        ab.report(base / "results", fmt="md")  # what `demo` and every run-then-report do: the names are cached
    finally:
        os.environ.pop("XDG_CACHE_HOME") if previous is None else os.environ.__setitem__("XDG_CACHE_HOME", previous)
    return base


def without_torch(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "120", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.support.no_torch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_guard_fails_a_command_that_needs_torch(records, demo_data):
    done = without_torch(records / "cache", "run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo",
                         "--data-dir", str(demo_data), "--results-dir", str(records / "other"), "--epochs", "1")
    assert done.returncode != 0 and "guard: torch imported" in done.stdout + done.stderr


@pytest.mark.parametrize("fmt", [None, "md", "tex"])
def test_report_imports_no_torch(records, fmt):
    args = ["report", "--results-dir", str(records / "results"), *(["--format", fmt] if fmt else [])]
    done = without_torch(records / "cache", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BitFit" in done.stdout and "Linear" in done.stdout  # display names, from the cache


STUDY = ROOT / "studies" / "demo.toml"


@pytest.mark.parametrize("args, expect", [
    (["study", "plan", str(STUDY)], "64 runs in all"),
    (["study", "plan", str(ROOT / "studies" / "alore_vtab1k.toml")], "runs in all"),
    (["study", "status", str(STUDY), "--results-dir", "{results}"], "pending"),
    (["validate", "study", str(STUDY)], "64 runs"),
    (["validate", "suite", str(ROOT / "suites" / "vtab1k.toml")], "vtab1k"),
], ids=["plan", "plan-vtab", "status", "validate-study", "validate-suite"])
def test_commands_that_train_nothing_import_no_torch(records, args, expect):
    done = without_torch(records / "cache", *[a.format(results=records / "results") for a in args])
    assert done.returncode == 0, done.stdout + done.stderr
    assert expect in done.stdout + done.stderr


@pytest.mark.parametrize("args, expect", [
    (["run", "--method", "alore", "--backbone", "vit_b16", "--data-dir", "{empty}"], "is not prepared"),
    (["run", "--method", "alore", "--backbone", "vit_b16", "--opt", "rank=0"], "rank must be at least 1"),
    (["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--opt", "sites=nowhere"],
     "is not one of"),
    (["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "demo", "--device", "gpu"], "--device"),
    (["tune", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--grid", "lr=abc",
      "--data-dir", "{empty}"], "lr"),
    (["run", "--method", "vpt_deep", "--backbone", "swin_b", "--suite", "demo", "--opt", "task_lengths=mars:3"],
     "task_lengths"),
    (["study", "run", str(STUDY), "--data-dir", "{empty}"], "is not prepared"),
    (["prepare", "--suite", "nope"], "unknown suite"),
    (["prepare", "--suite", "demo", "--data-dir", "/dev/null"], "not a folder"),
    (["bench", "--backbone", "vit_b16", "--batch-size", "0"], "--batch-size 0"),
    (["bench", "--backbone", "vit_b16", "--methods", "alore,nope"], "unknown method 'nope'"),
    (["bench", "--backbone", "vit_b16", "--json", "{empty}/no/such/bench.json"], "does not exist"),
], ids=["unprepared", "bad-option", "bad-choice", "bad-device", "bad-grid", "bad-task-option", "study-unprepared",
        "prepare-suite", "prepare-data-dir", "bench-batch", "bench-methods", "bench-json"])
def test_errors_before_training_import_no_torch(records, tmp_path, args, expect):
    done = without_torch(records / "cache", *[a.format(empty=tmp_path) for a in args])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "guard:" not in done.stdout + done.stderr and expect in done.stdout + done.stderr


def test_prepare_needs_no_torch(records, tmp_path):
    done = without_torch(records / "cache", "prepare", "--suite", "demo", "--tasks", "digits", "--data-dir",
                         str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "demo" / "digits").is_dir() and "1 prepared" in done.stdout + done.stderr


def test_peft_and_timm_entries_come_from_the_code_cache(records, tmp_path):
    """`peft:<type>` options and `timm:<name>` facts are read from peft / timm once and cached: with a
    warm cache the same checks run without them."""
    args = ["run", "--method", "peft:lokr", "--backbone", "timm:vit_tiny_patch16_224", "--opt", "r=0",
            "--data-dir", str(tmp_path)]
    cache = tmp_path / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    warm = subprocess.run([sys.executable, "-m", "alore_bench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    done = without_torch(cache, *args)
    assert warm.returncode == done.returncode == 2, warm.stderr + done.stdout + done.stderr
    assert "the rank must be at least 1" in done.stderr and done.stderr == warm.stderr


def test_every_method_config_is_the_same_without_torch(records):
    """The registry of built-ins the commands above use is the one `run` uses: every method's default
    options (and so every config hash) are identical whether torch is importable or not."""
    import json

    from alore_bench.config import config_to_dict
    from alore_bench.methods import METHODS

    script = ("import json, sys; from tests.support.no_torch import Guard; sys.meta_path.insert(0, Guard());"
              "from alore_bench.methods import METHODS; from alore_bench.config import config_to_dict;"
              "print(json.dumps({n: config_to_dict(METHODS.get(n).default_config()) for n in METHODS.names()}))")
    env = {**os.environ, "XDG_CACHE_HOME": str(records / "cache"), "PYTHONPATH": str(ROOT)}
    # Warm the peft schemas in that cache: one process for all of them (each start imports peft).
    names = METHODS.names("peft:*")
    subprocess.run([sys.executable, "-c", f"from alore_bench.methods import METHODS; [METHODS.get(n) for n in {names!r}]"],
                   cwd=ROOT, env=env, check=True, timeout=120)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    here = {n: config_to_dict(METHODS.get(n).default_config()) for n in METHODS.names()}
    assert json.loads(done.stdout) == json.loads(json.dumps(here)) and len(here) >= 22
