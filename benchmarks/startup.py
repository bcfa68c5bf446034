"""Start-up of the commands that train nothing, as wall seconds of a fresh process and as a ratio to
`alore-bench --help` measured in the same run: `report` on N records (100 by default, written first
by linear probes on the demo suite), `study plan`, `study status`, `validate study`, and the refusal
of a run on an unprepared suite. Each is also run with torch, timm and peft blocked, which must not
change its exit code (they import none of them).

    python benchmarks/startup.py [--records 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "alore_bench"]
GUARDED = [sys.executable, "-m", "tests.support.no_torch"]


def seconds(command, env, repeat: int) -> tuple[float, int]:
    times, code = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        code = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def write_records(base: Path, count: int, env) -> Path:
    """`count` records: linear probes (one epoch) on the demo's four tasks, count / 4 seeds each."""
    import alore_bench as ab

    os.environ.update(env)
    data, results = base / "data", base / "results"
    seeds = list(range(42, 42 + max(1, count // 4)))
    ab.prepare("demo", data_dir=data, say=lambda line: None)
    ab.run("linear", "demo_vit", suite="demo", data_dir=data, results_dir=results, seeds=seeds, epochs=1,
           device="cpu", say=lambda line: None)
    ab.report(results, fmt="md")  # what every run-then-report does: the display names are cached
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "XDG_CACHE_HOME": str(base / "cache"), "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
        results = write_records(base, args.records, env)
        written = len(list(results.rglob("seed*.json")))
        study = str(ROOT / "studies" / "demo.toml")
        cases = {
            "--help (baseline)": ["--help"],
            f"report ({written} records)": ["report", "--results-dir", str(results)],
            "study plan": ["study", "plan", study],
            "study status": ["study", "status", study, "--results-dir", str(results)],
            "validate study": ["validate", "study", study],
            "run, unprepared suite": ["run", "--method", "alore", "--backbone", "vit_b16", "--data-dir",
                                      str(base / "empty")],
        }
        baseline = None
        print(f"{'command':28} {'seconds':>8} {'x --help':>9} {'exit':>5}  without torch")
        for label, command in cases.items():
            wall, code = seconds(CLI + command, env, args.repeat)
            _guarded_wall, guarded_code = seconds(GUARDED + command, env, 1)
            baseline = baseline or wall
            same = "same exit" if guarded_code == code else f"exit {guarded_code}: imports the training stack"
            print(f"{label:28} {wall:8.2f} {wall / baseline:9.2f} {code:5d}  {same}")


if __name__ == "__main__":
    main()
