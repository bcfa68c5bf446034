"""Evaluation throughput: the harness's `engine.evaluate` (uint8 images from a split, moved, resized
and normalised on the device batch by batch, hits counted on the device) against a plain
`model(x)` loop over the same images already resized and normalised on the device, in images/s
and as a ratio measured in one run; with the peak memory of each (CUDA: max allocated).

    python benchmarks/eval_throughput.py [--backbone vit_b16] [--images 2048] [--stored-size 256]
        [--batch-size 256] [--device cpu|cuda] [--json FILE] [--smoke]

Random weights and random images stored at --stored-size (VTAB's test splits are resized to the
model's resolution at evaluation). --smoke: the demo ViT on 512 images, for CI.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from alore_bench.backbones import BACKBONES
from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, resolve_normalisation
from alore_bench.data.suites import Task
from alore_bench.engine import SilentProgress, autocast, evaluate
from alore_bench.env import resolve_device


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device):
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


@torch.no_grad()
def plain_loop(model, batches, device: torch.device) -> float:
    """Seconds for `model(x)` and the argmax over prepared device batches (one sync at the end)."""
    synchronise(device)
    start = time.perf_counter()
    for x in batches:
        with autocast(device):
            model(x).argmax(-1)
    synchronise(device)
    return time.perf_counter() - start


def measure(backbone: str, images: int, stored: int, batch: int, device: torch.device, classes: int = 100) -> dict:
    spec = BACKBONES.get(backbone)
    torch.manual_seed(0)
    model = spec.create(num_classes=classes, device=device).eval()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(images, stored, stored, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, size=images).astype(np.int64)
    split = SplitData(Task("bench", "bench", "bench", classes, {}), "test", pixels, labels, {})
    norm = resolve_normalisation("backbone", spec.mean, spec.std)
    batcher = DeviceBatcher(spec.input_size, norm, device, spec.interpolation)
    evaluate(model, SplitData(split.task, "test", pixels[:batch], labels[:batch], {}), batcher, batch,
             SilentProgress())  # warm-up: kernels chosen, caches filled
    reset_peak(device)
    synchronise(device)
    start = time.perf_counter()
    evaluate(model, split, batcher, batch, SilentProgress())
    synchronise(device)
    harness = time.perf_counter() - start
    harness_peak = peak_bytes(device)
    prepared = [batcher(pixels[i:i + batch]) for i in range(0, images, batch)]
    plain_loop(model, prepared[:1], device)  # warm-up
    reset_peak(device)
    plain = plain_loop(model, prepared, device)
    return {"backbone": backbone, "device": str(device), "images": images, "stored_size": stored,
            "input_size": spec.input_size, "batch_size": batch,
            "harness_images_per_s": images / harness, "plain_images_per_s": images / plain,
            "harness_over_plain": plain / harness, "harness_peak_bytes": harness_peak,
            "plain_peak_bytes_with_prepared_split": peak_bytes(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="vit_b16")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--stored-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    parser.add_argument("--smoke", action="store_true", help="the demo ViT on 512 images (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.backbone, args.images, args.stored_size, args.batch_size = "demo_vit", 512, 40, 128
    result = measure(args.backbone, args.images, args.stored_size, args.batch_size, resolve_device(args.device))
    print(f"{result['backbone']} on {result['device']}: {result['images']} images stored at "
          f"{result['stored_size']} px, evaluated at {result['input_size']} px, batch {result['batch_size']}")
    print(f"  harness evaluate: {result['harness_images_per_s']:9.1f} images/s (resize and normalise included)")
    print(f"  plain model(x):   {result['plain_images_per_s']:9.1f} images/s (inputs prepared beforehand)")
    print(f"  harness / plain:  {result['harness_over_plain']:.2f}x the plain loop's throughput")
    if result["harness_peak_bytes"] is not None:
        print(f"  peak memory: harness {result['harness_peak_bytes'] / 2**30:.2f} GiB, plain (whole split prepared "
              f"on the device) {result['plain_peak_bytes_with_prepared_split'] / 2**30:.2f} GiB")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
