"""Wall time of a whole study with `--workers 1` against `--workers N`, as a ratio in one run (the
same study, the same prepared data, fresh results dirs), and how far their records agree.

    python benchmarks/study_workers.py [--study studies/demo.toml] [--workers 2] [--device cpu]

The study's suites must be prepared (the demo: `alore-bench prepare --suite demo`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = str(Path(sys.executable).with_name("alore-bench"))


def run(study: str, results: Path, workers: int, device: str) -> float:
    start = time.perf_counter()
    subprocess.run([CLI, "study", "run", study, "--results-dir", str(results), "--device", device,
                    "--workers", str(workers)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def outcomes(results: Path) -> dict:
    out = {}
    for path in results.rglob("seed*.json"):
        record = json.loads(path.read_text())
        out[str(path.relative_to(results))] = (record["config_hash"], record["metrics"]["top1"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="studies/demo.toml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        one = run(args.study, Path(folder) / "one", 1, args.device)
        many = run(args.study, Path(folder) / "many", args.workers, args.device)
        first, second = outcomes(Path(folder) / "one"), outcomes(Path(folder) / "many")
    same_files = set(first) == set(second)
    equal = sum(first[k] == second.get(k) for k in first)
    gap = max((abs(first[k][1] - second[k][1]) for k in first if k in second), default=0.0)
    print(f"{args.study}: {len(first)} runs on {args.device}")
    print(f"--workers 1:          {one:8.1f} s")
    print(f"--workers {args.workers}:          {many:8.1f} s   speed-up x{one / many:.2f}")
    # On CPU, one process uses every core and each of N workers 1/N of them: float summation order
    # differs with the thread count, so a prediction near a tie can flip (same thread count: identical).
    print(f"same record files: {same_files}; equal (config hash, top-1): {equal} of {len(first)}; "
          f"largest top-1 difference {gap:.2f} points")


if __name__ == "__main__":
    main()
