"""How much of a training step is not the model: the engine's `train` (batches from a uint8 memory
map, normalising and resizing on the device, scheduler, loss bookkeeping, progress) against the
same forward/backward/AdamW steps on batches already on the device, as a fraction in one run.

    python benchmarks/step_overhead.py [--backbone demo_vit] [--method alore] [--images 800]
                                       [--stored 0] [--epochs 5] [--device cpu] [--compile]

--stored N stores the images at N x N (0: the backbone's input size), so resizing is measured too.
Random images; the times do not depend on their content.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alore_bench.backbones import BACKBONES
from alore_bench.config import TrainConfig
from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, iterate, resolve_normalisation
from alore_bench.data.suites import Task
from alore_bench.engine import SilentProgress, autocast, compiled, optimizer_and_schedule, train
from alore_bench.env import resolve_device
from alore_bench.methods import METHODS


def build(backbone: str, method: str, classes: int, device: torch.device):
    torch.manual_seed(0)
    spec = BACKBONES.get(backbone)
    model = spec.create(num_classes=classes)
    method_spec = METHODS.get(method)
    return method_spec.apply(model, method_spec.default_config()).to(device)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_only(model, batches, config: TrainConfig, device: torch.device) -> float:
    """The same steps (forward, loss, backward, AdamW, schedule) on batches already on the device."""
    optimizer, scheduler = optimizer_and_schedule(model, config, len(batches))
    forward = compiled(model, config.compile)
    model.train()
    synchronise(device)
    start = time.perf_counter()
    step = 0
    for _epoch in range(config.epochs):
        for images, labels in batches:
            with autocast(device):
                loss = F.cross_entropy(forward(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(step)
    synchronise(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="demo_vit")
    parser.add_argument("--method", default="alore")
    parser.add_argument("--images", type=int, default=800)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--stored", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    spec = BACKBONES.get(args.backbone)
    stored = args.stored or spec.input_size
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:  # a real memory map, as prepared data are read
        path = Path(folder) / "images.npy"
        np.save(path, rng.integers(0, 255, size=(args.images, stored, stored, 3), dtype=np.uint8))
        images = np.load(path, mmap_mode="r")
        labels = rng.integers(0, args.classes, size=args.images)
        data = SplitData(Task("bench", "bench", "bench", args.classes, {}), "train", images, labels, {})
        batcher = DeviceBatcher(spec.input_size, resolve_normalisation("backbone", spec.mean, spec.std), device,
                                spec.interpolation)
        config = TrainConfig(epochs=args.epochs, warmup_epochs=1, batch_size=args.batch_size, compile=args.compile)

        model = build(args.backbone, args.method, args.classes, device)
        train(model, data, batcher, TrainConfig(epochs=1, warmup_epochs=0, batch_size=args.batch_size,
                                                compile=args.compile), 0, SilentProgress())  # warm-up
        model = build(args.backbone, args.method, args.classes, device)
        start = time.perf_counter()
        trained = train(model, data, batcher, config, 0, SilentProgress())
        synchronise(device)
        engine = time.perf_counter() - start

        batches = list(iterate(data, batcher, args.batch_size, shuffle=True, seed=0, epoch=0))
        model = build(args.backbone, args.method, args.classes, device)
        pure = model_only(model, batches, config, device)

    steps = trained["steps"]
    print(f"{args.backbone} + {args.method}, {args.images} images stored at {stored}px -> {spec.input_size}px, "
          f"batch {args.batch_size}, {args.epochs} epochs ({steps} steps), {device}, {torch.get_num_threads()} threads"
          + (", compiled" if args.compile else ""))
    print(f"engine train():            {engine:8.2f} s  ({1000 * engine / steps:.1f} ms/step)")
    print(f"model steps only:          {pure:8.2f} s  ({1000 * pure / steps:.1f} ms/step)")
    print(f"outside forward/backward:  {100 * max(engine - pure, 0.0) / engine:6.1f} % of a step")


if __name__ == "__main__":
    main()
