"""Where a job's wall time goes outside training and evaluation, through the real runner: process
start, imports, preflight, then the runner's own phases (resolve, weights, claim, data, environment,
build = model + method + device, train, merge, evaluate, record), for a cold process (a fresh
`python` running one job), a warm worker (the same process's next job: pretrained state and splits
cached) and a study of many short jobs (the demo study's LoRA variant, run here job after job).
Prints the fixed cost per job (everything but train and evaluate) and its share of the study's time.

    python benchmarks/job_overhead.py [--device cpu|cuda] [--no-vtab-open] [--study-variant lora] [--json F]

Backbones: demo_vit (the demo's) and vit_b16 with random weights (written as Google's published
ViT-B_16.npz, so loading and converting it is timed) on a 224-px task of 16 training
and 16 test images (`overhead224`, benchmarks/gpu_check_plugin.py): training and test are cut to
a step so the fixed phases show. It also times opening and verifying a VTAB-size task (10,000
224-px test images, the `gpu_check` suite), which a worker does once per task.
"""

from __future__ import annotations

import time

START = time.time()  # first: a child's process start is measured against its parent's clock

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

HERE = Path(__file__).resolve().parent
PLUGIN = HERE / "gpu_check_plugin.py"
FIXED_EXCLUDES = ("train", "evaluate")
CASES = {"demo_vit": ("demo", "digits"), "vit_b16": ("overhead224", "random")}


def one_job(backbone: str, seed: int, data: Path, results: Path, device: str) -> Dict[str, Any]:
    """Run one job of `backbone` through preflight and the runner here; its phases in seconds."""
    from alore_bench.api import build_spec
    from alore_bench.execution.jobs import check_specs
    from alore_bench.progress import SilentProgress
    from alore_bench.runs.runner import run_job

    suite, task = CASES[backbone]
    start = time.perf_counter()
    spec = build_spec("lora", backbone, suite, tasks=task, seeds=[seed], epochs=1, device=device, data_dir=data,
                      results_dir=results, checkpoint_every=0, eval_batch_size=64)
    (spec,) = check_specs([spec], lambda line: None)
    preflight = time.perf_counter() - start
    outcome = run_job(spec.jobs()[0], SilentProgress())
    assert outcome.status == "ran", outcome
    return {"preflight": preflight, **outcome.phases}


def child(backbone: str, data: Path, results: Path, device: str) -> None:
    """A cold process: its start (against the parent's clock), imports, then one job."""
    started = time.time() - START  # interpreter start to here is in the parent's measure
    begin = time.perf_counter()
    import torch  # noqa: F401  the training stack a job imports
    import timm  # noqa: F401
    import alore_bench.runs.runner  # noqa: F401
    imports = time.perf_counter() - begin
    phases = one_job(backbone, 42, data, results, device)
    print(json.dumps({"start_epoch": START, "imports": imports, "in_process_before_imports": started, **phases}))


def cold(backbone: str, data: Path, results: Path, device: str) -> Dict[str, float]:
    env = {**os.environ, "ALORE_BENCH_PLUGINS": str(PLUGIN)}
    launched = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", backbone, "--data", str(data), "--results",
                           str(results), "--device", device], env=env, capture_output=True, text=True, check=True)
    wall = time.time() - launched
    phases = json.loads(done.stdout.strip().splitlines()[-1])
    start = phases.pop("start_epoch") - launched + phases.pop("in_process_before_imports")
    return {"process start": start, **phases, "exit": wall - start - sum(phases.values())}


def warm(backbone: str, data: Path, results: Path, device: str) -> Dict[str, float]:
    one_job(backbone, 1, data, results, device)  # the worker's first job fills its caches
    return one_job(backbone, 2, data, results, device)


def prepare(data: Path, suites: List[str]) -> None:
    import alore_bench as ab

    for suite in suites:
        ab.prepare(suite, data_dir=data, say=lambda line: None)


def vtab_data_open(data: Path) -> Dict[str, Any]:
    """Seconds to open and verify the `gpu_check` task's splits (10,000 224-px test images), as a
    worker does once per task."""
    from alore_bench.data.cache import read_manifest
    from alore_bench.data.suites import SUITES
    from alore_bench.runs import artifacts
    from alore_bench.runs.record import data_fingerprint

    prepare(data, ["gpu_check"])
    task = SUITES.get("gpu_check").tasks[0]
    fingerprint = data_fingerprint(read_manifest(data, task), ("train800val200", "test"))
    artifacts._SPLITS.clear()
    start = time.perf_counter()
    artifacts.task_splits(data, task, ("train800val200", "test"), fingerprint)
    return {"test_images": task.splits["test"], "seconds": time.perf_counter() - start}


def study(variant: str, data: Path, results: Path, device: str) -> Dict[str, Any]:
    """The demo study's `variant` here, job after job: its wall time against its jobs' training and
    evaluation."""
    import alore_bench as ab

    text = (HERE.parent / "studies" / "demo.toml").read_text()
    head, _, rest = text.partition("[variants.")
    blocks = {b.split("]")[0]: "[variants." + b for b in ("[variants." + rest).split("[variants.")[1:]}
    path = results / "study.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + blocks[variant])
    start = time.perf_counter()
    ab.study_run(path, data_dir=data, results_dir=results, device=device, executor="local", say=lambda line: None)
    wall = time.perf_counter() - start
    records = [json.loads(p.read_text()) for p in results.rglob("seed*.json")]
    work = sum(r["timing"]["phases"]["train"] + r["timing"]["phases"]["evaluate"] for r in records)
    return {"jobs": len(records), "wall": wall, "train_and_evaluate": work,
            "fixed_per_job": (wall - work) / len(records), "fixed_share": (wall - work) / wall}


def fixed(phases: Dict[str, float]) -> float:
    return sum(v for k, v in phases.items() if k not in FIXED_EXCLUDES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-vtab-open", dest="vtab_open", action="store_false",
                        help="skip timing the opening of a VTAB-size test split")
    parser.add_argument("--study-variant", default="lora", help="a variant of studies/demo.toml ('' skips the study)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ["ALORE_BENCH_PLUGINS"] = str(PLUGIN)
    if args.child:
        return child(args.child, args.data, args.results, args.device)
    work = Path(tempfile.mkdtemp(prefix="alore-overhead-"))
    data = work / "data"
    prepare(data, ["demo", "overhead224"])
    from random_weights import write_random_vit_b16

    write_random_vit_b16(data)
    columns: Dict[str, Dict[str, float]] = {}
    for backbone in CASES:
        columns[f"{backbone} cold"] = cold(backbone, data, work / f"cold-{backbone}", args.device)
        columns[f"{backbone} warm"] = warm(backbone, data, work / f"warm-{backbone}", args.device)
    phases = list(dict.fromkeys(k for column in columns.values() for k in column))
    print(f"seconds per phase of one LoRA job (1 epoch), device {args.device}:")
    print(f"{'phase':<16}" + "".join(f"{name:>16}" for name in columns))
    for phase in phases:
        print(f"{phase:<16}" + "".join(f"{column.get(phase, 0.0):16.3f}" for column in columns.values()))
    print(f"{'fixed cost':<16}" + "".join(f"{fixed(column):16.3f}" for column in columns.values()))
    result: Dict[str, Any] = {"device": args.device, "phases": columns,
                              "fixed": {name: fixed(column) for name, column in columns.items()}}
    if args.vtab_open:
        result["vtab_open"] = opened = vtab_data_open(data)
        print(f"opening and verifying a task of {opened['test_images']} 224-px test images (once per worker and "
              f"task): {opened['seconds']:.2f}s")
    if args.study_variant:
        result["study"] = study(args.study_variant, data, work / "study", args.device)
        s = result["study"]
        print(f"demo study, variant {args.study_variant}: {s['jobs']} jobs in {s['wall']:.1f}s, of which training and "
              f"evaluation {s['train_and_evaluate']:.1f}s: fixed cost {s['fixed_per_job']:.2f}s per job, "
              f"{100 * s['fixed_share']:.1f}% of the study")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
