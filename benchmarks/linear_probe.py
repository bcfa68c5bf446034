"""Linear probing: training the head through the frozen eval-mode backbone for every epoch versus
embedding the split once and training the head on the features (the same AdamW recipe, the same
result), as a ratio in one run; the C grid's time with each algorithm (Newton, L-BFGS) at one torch
thread and at torch's default, on the random images' features and on demo textures' (the
measurement behind `logistic.SOLVER_THREADS` and `NEWTON_MAX_PARAMETERS`); and a 5-seed probe of
one demo task against a 1-seed one, both from empty caches (the head is solved once per task, not
per seed).

    python benchmarks/linear_probe.py [--backbone demo_vit] [--images 1000] [--epochs 100] [--device cpu]

Random images at the backbone's input size for the first two; the demo suite's textures and digits
(demo_vit features) for the last two.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from alore_bench.backbones import BACKBONES
from alore_bench.config import TrainConfig
from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, resolve_normalisation
from alore_bench.data.suites import Task
from alore_bench.engine import SilentProgress, train
from alore_bench.env import resolve_device
from alore_bench.methods import METHODS
from alore_bench.logistic import fit_logistic, select_c
from alore_bench.probe import extract_features, train_head_adamw


def probe_model(backbone: str, classes: int, device: torch.device):
    spec = BACKBONES.get(backbone)
    model = spec.create(num_classes=classes, device=device)
    if backbone == "demo_vit":  # the shipped weights; other backbones run with random weights (timing only)
        spec.load_weights(model, spec.resolve_weights(None, Path(".")))
    linear = METHODS.get("linear")
    return linear.apply(model, linear.default_config()).to(device)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="demo_vit")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    spec = BACKBONES.get(args.backbone)
    rng = np.random.default_rng(0)
    size = spec.input_size
    images = rng.integers(0, 255, size=(args.images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, size=args.images)
    task = Task(name="bench", suite="bench", group="bench", classes=args.classes, splits={})
    data = SplitData(task, "train", images, labels, {})
    batcher = DeviceBatcher(size, resolve_normalisation("backbone", spec.mean, spec.std), device, spec.interpolation)
    config = TrainConfig(epochs=args.epochs, warmup_epochs=min(10, args.epochs))

    torch.manual_seed(0)
    model = probe_model(args.backbone, args.classes, device)
    start = time.perf_counter()
    train(model, data, batcher, config, 0, SilentProgress(), train_mode=METHODS.get("linear").train_mode)
    synchronise(device)
    through = time.perf_counter() - start

    torch.manual_seed(0)
    model = probe_model(args.backbone, args.classes, device)
    start = time.perf_counter()
    features, targets = extract_features(model, data, batcher)
    synchronise(device)
    embed = time.perf_counter() - start
    start = time.perf_counter()
    train_head_adamw(model.get_classifier(), features, targets, config, 0)
    synchronise(device)
    head = time.perf_counter() - start
    thread_counts = sorted({1, torch.get_num_threads()})
    problems = {"random images": (features, targets, args.classes), "demo textures": demo_features("textures", device)}
    grid_seconds = {(problem, algorithm, threads): solve_grid(*problem_data, device, threads, algorithm)
                    for problem, problem_data in problems.items() for algorithm in ("newton", "lbfgs")
                    for threads in thread_counts}
    seeds_seconds = {count: probe_seeds(count) for count in (1, 5)}

    print(f"{args.backbone}, {args.images} images, {args.epochs} epochs, {device}, {torch.get_num_threads()} threads")
    print(f"through the frozen backbone: {through:8.2f} s")
    print(f"cached features (embed {embed:.2f} s + AdamW head {head:.2f} s): {embed + head:8.2f} s   "
          f"speed-up x{through / (embed + head):.1f}")
    for (problem, algorithm, threads), seconds in grid_seconds.items():
        ratio = seconds / grid_seconds[(problem, "lbfgs", 1)]
        print(f"C grid and refit on {problem}, {algorithm}, {threads} torch thread(s): {seconds:8.2f} s   "
              f"x{ratio:.2f} of L-BFGS at 1 thread")
    print(f"probe of demo digits, 5 seeds: {seeds_seconds[5]:.2f} s, 1 seed: {seeds_seconds[1]:.2f} s   "
          f"x{seeds_seconds[5] / seeds_seconds[1]:.2f} (target: at most x1.2)")


def demo_features(task: str, device: torch.device):
    """demo_vit's features of a demo task's 1,000 training images (the probe's real problem there)."""
    import alore_bench as ab
    from alore_bench.data.cache import load_split
    from alore_bench.data.suites import SUITES

    root = Path(tempfile.mkdtemp(prefix="probe-features-"))
    try:
        ab.prepare("demo", tasks=task, data_dir=root, say=lambda line: None)
        spec_task = next(t for t in SUITES.get("demo").tasks if t.name == task)
        split = load_split(root, spec_task, "train800val200")
        spec = BACKBONES.get("demo_vit")
        batcher = DeviceBatcher(spec.input_size, resolve_normalisation("backbone", spec.mean, spec.std), device,
                                spec.interpolation)
        features, targets = extract_features(probe_model("demo_vit", spec_task.classes, device), split, batcher)
        return features, targets, spec_task.classes
    finally:
        shutil.rmtree(root, ignore_errors=True)


def solve_grid(features: torch.Tensor, targets: torch.Tensor, classes: int, device: torch.device, threads: int,
               algorithm: str) -> float:
    """The probe's work on one task: the C grid on an 80/20 split of the features, then the refit."""
    cut = len(targets) * 4 // 5
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        best, _, _ = select_c((features[:cut], targets[:cut]), (features[cut:], targets[cut:]), classes,
                              algorithm=algorithm)
        fit_logistic(features, targets, classes, best, algorithm=algorithm)
        synchronise(device)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def probe_seeds(count: int) -> float:
    """Wall time of `run --method linear` on demo digits with `count` seeds, data prepared beforehand,
    features and heads not cached."""
    import alore_bench as ab

    root = Path(tempfile.mkdtemp(prefix="probe-seeds-"))
    try:
        ab.prepare("demo", tasks="digits", data_dir=root / "data", say=lambda line: None)
        start = time.perf_counter()
        ab.run("linear", "demo_vit", "demo", tasks="digits", seeds=list(range(42, 42 + count)), device="cpu",
               data_dir=root / "data", results_dir=root / "results", say=lambda line: None)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
