"""Linear probing: training the head through the frozen eval-mode backbone for every epoch versus
embedding the split once and training the head on the features (the same AdamW recipe, the same
result), as a ratio in one run; plus the L-BFGS probe's time.

    python benchmarks/linear_probe.py [--backbone demo_vit] [--images 1000] [--epochs 100] [--device cpu]

Random images at the backbone's input size; the times do not depend on their content.
"""

from __future__ import annotations

import argparse
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
from alore_bench.probe import extract_features, fit_logistic, train_head_adamw


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
    start = time.perf_counter()
    fit_logistic(features, targets, args.classes, 1.0)
    synchronise(device)
    lbfgs = time.perf_counter() - start

    print(f"{args.backbone}, {args.images} images, {args.epochs} epochs, {device}, {torch.get_num_threads()} threads")
    print(f"through the frozen backbone: {through:8.2f} s")
    print(f"cached features (embed {embed:.2f} s + AdamW head {head:.2f} s): {embed + head:8.2f} s   "
          f"speed-up x{through / (embed + head):.1f}")
    print(f"cached features, one L-BFGS fit: {embed + lbfgs:8.2f} s   speed-up x{through / (embed + lbfgs):.1f}")


if __name__ == "__main__":
    main()
