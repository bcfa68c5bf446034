"""The one-shot GPU check behind `benchmarks/gpu_check.sh`: every step through the real command
line, one JSON written after each step (so a check cut short keeps what it measured).

Steps: the CUDA-relevant tests; the demo; `alore-bench bench` (bf16 on CUDA); a synthetic VTAB-shaped
task (1,000 training and 10,000 test images at 224 px, random weights) timed per epoch for alore,
lora, full and linear; the same task as packed runs (`--per-device 1, 2, 4, 8`, images/s per GPU);
evaluation throughput (benchmarks/eval_throughput.py on 10,000 images); `--compile` on and off; and
the achieved fraction of the GPU's bf16 peak. `--smoke` runs every step
at toy size on CPU (the demo ViT, 32-px images) and writes the same JSON.

    python benchmarks/gpu_check.py [--smoke] [--out FILE] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gpu_check_plugin import SIZES  # noqa: E402  (the suites' sizes; registering them here is harmless)
from random_weights import write_random_vit_b16  # noqa: E402

TRAIN_IMAGES = {suite: train + val for suite, (_size, train, val, _test) in SIZES.items()}
CLI = str(Path(sys.executable).with_name("alore-bench"))
# Dense bf16 tensor-core peaks (vendor data sheets, TFLOP/s without sparsity), by a word of the device
# name; longer names first, so an L40S is not read as an L40 or an L4.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L40": 181.0, "A10G": 70.0,
                    "L4": 121.0}
# Gradient passes per image and forward: full fine-tuning computes weight and activation gradients
# (about 3x the forward), PETL methods activation gradients through the frozen backbone (about 2x),
# the linear probe only embeds (1x).
PASSES = {"full": 3.0, "linear": 1.0}


@dataclass(frozen=True)
class Mode:
    device: str
    backbone: str
    suite: str
    epochs: int
    packing: Sequence[int]
    compile_epochs: int
    demo: List[str]
    bench: List[str]
    tests: List[str]
    evaluation: List[str]
    # Extra options of the linear probe's run: at toy size on CPU its default L-BFGS grid fits
    # separable random labels for thousands of iterations (37 s of a 4-minute smoke), so the smoke
    # times the probe's AdamW solver; the GPU check keeps the default.
    linear: Sequence[str] = ()


FULL = Mode(device="cuda", backbone="vit_b16", suite="gpu_check", epochs=2, packing=(1, 2, 4, 8), compile_epochs=3,
            demo=[], bench=["--backbone", "vit_b16", "--steps", "10"],
            tests=["tests/unit/test_engine.py", "tests/unit/execution", "tests/unit/test_costs.py",
                   "tests/unit/methods"],
            evaluation=["--backbone", "vit_b16", "--images", "10000", "--batch-size", "256"])
SMOKE = Mode(device="cpu", backbone="demo_vit", suite="gpu_check_smoke", epochs=1, packing=(1, 2), compile_epochs=2,
             demo=["--methods", "lora", "--epochs", "1"],
             bench=["--backbone", "demo_vit", "--methods", "linear", "--steps", "2"],
             tests=["tests/unit/test_engine.py", "-k", "evaluation or compiled or channels_last"],
             evaluation=["--smoke"], linear=("--opt", "solver=adamw"))


class StepFailed(RuntimeError):
    pass


def command(argv: Sequence[str], env: Dict[str, str], timeout: float) -> str:
    """Run one command; its output, or StepFailed with the output's last lines."""
    try:
        done = subprocess.run(list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    if done.returncode != 0:
        tail = " | ".join(done.stdout.strip().splitlines()[-5:])
        raise StepFailed(f"exit {done.returncode}: {' '.join(argv)}: {tail}")
    return done.stdout


def records(folder: Path) -> List[Dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("seed*.json"))]


def epoch_seconds(record: Dict[str, Any]) -> List[float]:
    """Seconds of each epoch, from the record's cumulative per-epoch history."""
    marks = [0.0] + [h["seconds"] for h in record["history"]]
    return [b - a for a, b in zip(marks, marks[1:])]


class Check:
    def __init__(self, mode: Mode, work: Path, out: Path, smoke: bool):
        self.mode, self.work, self.out, self.smoke = mode, work, out, smoke
        self.data = work / "data"
        self.env = {**os.environ, "ALORE_BENCH_PLUGINS": str(HERE / "gpu_check_plugin.py"), "COLUMNS": "160"}
        self.result: Dict[str, Any] = {"smoke": smoke, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                       "machine": machine(mode.device), "steps": {}}
        self.gflops: Optional[float] = None

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.out.with_name(f".{self.out.name}.tmp")
        temporary.write_text(json.dumps(self.result, indent=2) + "\n")
        os.replace(temporary, self.out)

    def step(self, name: str, body: Callable[[], Dict[str, Any]]) -> None:
        start = time.perf_counter()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            entry = {"status": "ok", **body()}
        except (StepFailed, KeyError, ValueError, OSError) as error:
            entry = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        entry["seconds"] = time.perf_counter() - start
        print(f"[gpu_check] {name}: {entry['status']} in {entry['seconds']:.1f}s"
              + (f" ({entry['error']})" if entry["status"] != "ok" else ""), flush=True)
        self.result["steps"][name] = entry
        self.save()

    def cli(self, *argv: str, timeout: float = 300) -> str:
        return command([CLI, *argv], self.env, timeout)

    # The steps ------------------------------------------------------------------------------------------
    def tests(self) -> Dict[str, Any]:
        output = command([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *self.mode.tests],
                         self.env, 300)
        return {"summary": output.strip().splitlines()[-1], "selection": list(self.mode.tests)}

    def demo(self) -> Dict[str, Any]:
        results = self.work / "demo"
        self.cli("demo", "--device", self.mode.device, "--data-dir", str(self.data), "--results-dir", str(results),
                 *self.mode.demo, timeout=400)
        return {"records": [{"method": r["method"], "task": r["task"], "top1": r["metrics"]["top1"],
                             "train_seconds": r["timing"]["train_seconds"], "config_hash": r["config_hash"]}
                            for r in records(results)]}

    def bench(self) -> Dict[str, Any]:
        out = self.work / "bench.json"
        self.cli("bench", "--device", self.mode.device, "--json", str(out), *self.mode.bench, timeout=400)
        bench = json.loads(out.read_text())
        self.gflops = next(row["gflops"] for row in bench["rows"] if row["method"] == "backbone")
        return {"rows": bench["rows"], "settings": bench["settings"]}

    def prepare(self) -> Dict[str, Any]:
        self.cli("prepare", "--suite", self.mode.suite, "--data-dir", str(self.data), timeout=300)
        if self.mode.backbone == "vit_b16":  # random weights in the published layout (nothing to download)
            write_random_vit_b16(self.data)
        return {"suite": self.mode.suite, "weights": "random" if self.mode.backbone == "vit_b16" else "shipped"}

    def run(self, method: str, results: Path, epochs: int, *extra: str) -> List[Dict[str, Any]]:
        self.cli("run", "--method", method, "--backbone", self.mode.backbone, "--suite", self.mode.suite,
                 "--device", self.mode.device, "--data-dir", str(self.data), "--results-dir", str(results),
                 "--epochs", str(epochs), "--checkpoint-every", "0", *extra, timeout=400)
        return records(results)

    def methods(self) -> Dict[str, Any]:
        rows = {}
        for method in ("alore", "lora", "full", "linear"):
            extra = self.mode.linear if method == "linear" else ()
            record = self.run(method, self.work / "methods" / method, self.mode.epochs, *extra)[0]
            rows[method] = self.throughput(method, record)
        return {"epochs": self.mode.epochs, "methods": rows, "linear_options": list(self.mode.linear)}

    def throughput(self, method: str, record: Dict[str, Any]) -> Dict[str, Any]:
        timing = record["timing"]
        row = {"top1": record["metrics"]["top1"], "train_seconds": timing["train_seconds"],
               "eval_seconds": timing["eval_seconds"], "eval_examples": record["metrics"]["eval_examples"],
               "memory": record["memory"]}
        if record["history"]:  # the L-BFGS probe's "training" is embedding plus a solve: no epochs to time
            epochs = epoch_seconds(record)
            steady = epochs[1:] or epochs  # the first epoch also pays for kernel selection and warm-up
            row["epoch_seconds"] = epochs
            row["train_images_per_s"] = TRAIN_IMAGES[self.mode.suite] / (sum(steady) / len(steady))
        if timing["eval_seconds"]:
            row["eval_images_per_s"] = record["metrics"]["eval_examples"] / timing["eval_seconds"]
        peak = self.result["machine"].get("bf16_peak_tflops")
        if peak and self.gflops:
            if "train_images_per_s" in row:
                achieved = row["train_images_per_s"] * self.gflops * PASSES.get(method, 2.0) / 1e3
                row["train_fraction_of_bf16_peak"] = achieved / peak
            if "eval_images_per_s" in row:
                row["eval_fraction_of_bf16_peak"] = row["eval_images_per_s"] * self.gflops / 1e3 / peak
        return row

    def packing(self) -> Dict[str, Any]:
        rows = {}
        for per_device in self.mode.packing:
            results = self.work / "packing" / str(per_device)
            seeds = ",".join(str(s) for s in range(1, per_device + 1))
            start = time.perf_counter()
            done = self.run("lora", results, 1, "--seeds", seeds, "--executor", "workers", "--workers",
                            str(per_device), "--per-device", str(per_device))
            wall = time.perf_counter() - start
            images = sum(r["timing"]["steps"] * r["config"]["train"]["batch_size"] + r["metrics"]["eval_examples"]
                         for r in done)
            train_seconds = [r["timing"]["train_seconds"] for r in done]
            # Whole commands (process start, weights, data, evaluation included), and training alone
            # (the jobs train side by side: their images over the longest one's training time).
            rows[str(per_device)] = {"jobs": len(done), "wall_seconds": wall, "images_per_s_per_gpu": images / wall,
                                     "train_images_per_s_per_gpu": len(done) * TRAIN_IMAGES[self.mode.suite]
                                     / max(train_seconds), "train_seconds": train_seconds}
        return {"method": "lora", "epochs": 1, "per_device": rows}

    def evaluation(self) -> Dict[str, Any]:
        out = self.work / "eval.json"
        command([sys.executable, str(HERE / "eval_throughput.py"), "--device", self.mode.device, "--json", str(out),
                 *self.mode.evaluation], self.env, 300)
        return json.loads(out.read_text())

    def compile(self) -> Dict[str, Any]:
        rows = {}
        for flag in ("--no-compile", "--compile"):
            record = self.run("lora", self.work / "compile" / flag.strip("-"), self.mode.compile_epochs,
                              *([flag] if flag == "--compile" else []))[0]
            epochs = epoch_seconds(record)
            rows[flag.strip("-")] = {"epoch_seconds": epochs, "first_epoch": epochs[0],
                                     "later_epochs_mean": sum(epochs[1:]) / max(len(epochs) - 1, 1),
                                     "eval_seconds": record["timing"]["eval_seconds"],
                                     "top1": record["metrics"]["top1"]}
        rows["later_epoch_speedup"] = rows["no-compile"]["later_epochs_mean"] / rows["compile"]["later_epochs_mean"]
        return rows


def machine(device: str) -> Dict[str, Any]:
    import torch

    info: Dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        info.update(gpu=name, cuda=torch.version.cuda, gpus=torch.cuda.device_count(),
                    bf16_peak_tflops=next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None))
    elif device.startswith("cuda"):
        info["gpu"] = None  # asked for CUDA, none found: every CUDA step fails and says so
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every step at toy size on CPU (CI)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (default benchmarks/results/gpu_check*.json)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    mode = SMOKE if args.smoke else FULL
    out = args.out or HERE / "results" / ("gpu_check_smoke.json" if args.smoke else "gpu_check.json")
    work = args.work or Path(tempfile.mkdtemp(prefix="alore-gpu-check-"))
    check = Check(mode, work, out, args.smoke)
    for name, body in (("tests", check.tests), ("demo", check.demo), ("bench", check.bench),
                       ("prepare", check.prepare), ("methods", check.methods), ("packing", check.packing),
                       ("evaluation", check.evaluation),
                       ("compile", check.compile)):
        check.step(name, body)
    failed = [name for name, entry in check.result["steps"].items() if entry["status"] != "ok"]
    print(f"[gpu_check] wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else "; every step ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
