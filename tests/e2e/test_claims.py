"""Claims: two real processes on one results folder never run the same job twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from alore_bench.io import Claim


def test_a_claim_is_exclusive_and_free_again_when_released_or_its_owner_dies(tmp_path):
    record = tmp_path / "r" / "seed1.json"
    first = Claim.acquire(record)
    assert first is not None
    # POSIX record locks exclude other processes (not the holder itself): another process checks.
    holder = subprocess.run([sys.executable, "-c", (
        "import sys; from pathlib import Path; from alore_bench.io import Claim; "
        f"sys.exit(0 if Claim.acquire(Path({str(record)!r})) is None else 1)")])
    assert holder.returncode == 0
    assert str(os.getpid()) in Claim.owner(record)
    first.release()
    # A process that takes the claim and dies without releasing it leaves it free.
    subprocess.run([sys.executable, "-c", (
        "import os; from pathlib import Path; from alore_bench.io import Claim; "
        f"Claim.acquire(Path({str(record)!r})); os._exit(9)")])
    again = Claim.acquire(record)
    assert again is not None
    again.release()


def test_two_concurrent_runs_on_one_results_dir_run_each_job_once(env_data, tmp_path):
    results = tmp_path / "results"
    command = [str(Path(sys.executable).with_name("alore-bench")), "run", "--method", "ln_tune", "--backbone",
               "demo_vit", "--suite", "demo", "--seeds", "1,2", "--epochs", "1", "--device", "cpu",
               "--results-dir", str(results)]
    env = dict(os.environ, ALORE_BENCH_DATA=str(env_data))
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    ran = [line.split(":")[0] for out in outputs for line in out.splitlines() if ": top-1 " in line]
    assert sorted(ran) == sorted(set(ran)) and len(ran) == 8, outputs  # 4 tasks x 2 seeds, each run once
    records = list(results.rglob("seed*.json"))
    assert len(records) == 8 and all(json.loads(p.read_text())["status"] == "ok" for p in records)
    assert not list(results.rglob(".*.claim"))  # released claims leave nothing behind


def test_running_lists_claims_held_by_live_processes_only(tmp_path):
    import time

    live, dead = tmp_path / "a" / "seed1.json", tmp_path / "b" / "seed2.json"
    subprocess.run([sys.executable, "-c", (  # a dead owner's leftover claim file
        "import os; from pathlib import Path; from alore_bench.io import Claim; "
        f"Claim.acquire(Path({str(dead)!r}), job={{'task': 'b'}}); os._exit(9)")])
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from alore_bench.io import Claim; "
        f"c = Claim.acquire(Path({str(live)!r}), job={{'task': 'a', 'stage': 'tune'}}); print('held', flush=True); "
        "sys.stdin.read()")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    running = Claim.running(tmp_path)
    assert [(r["job"], r["pid"]) for r in running] == [({"task": "a", "stage": "tune"}, holder.pid)]
    holder.stdin.close()
    holder.wait(timeout=30)
    time.sleep(0.1)
    assert Claim.running(tmp_path) == []
