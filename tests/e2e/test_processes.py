"""What needs a fresh process: a warm `list` imports no heavy library, per-run CPU peak memory."""

from __future__ import annotations
import os
from tests.cli.test_errors import CPU_PEAK_SCRIPT, RUN, _age, _dead_pid, runner  # noqa: F401


def test_cpu_peak_memory_is_measured_per_run():
    # A fresh process: in a long-lived one, freed memory kept by the allocator would be reused and
    # the 400 MiB would not show in the resident set at all.
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", CPU_PEAK_SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_list_from_a_warm_cache_imports_neither_torch_nor_timm_nor_peft(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "200"}
    script = ("import sys; from typer.testing import CliRunner; from alore_bench.cli import app; "
              "r = CliRunner().invoke(app, ['list']); assert r.exit_code == 0, r.output; "
              "print(sorted(m for m in ('torch', 'timm', 'peft') if m in sys.modules))")
    cold = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.strip().endswith("['peft', 'timm', 'torch']")  # the first list builds the tables
    warm = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip().endswith("[]"), warm.stdout[-300:]
