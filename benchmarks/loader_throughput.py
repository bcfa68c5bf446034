"""Images per second: batches from the cache (uint8 .npy -> resized, normalised tensor, no
decoding) versus decoding and resizing the same images with PIL per batch, as a ratio in one run.

    python benchmarks/loader_throughput.py [--images 1024] [--batch-size 64] [--device cpu]

The images are 500 x 375 JPEGs (a typical Natural-task photo), stored by the cache at 224 x 224.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alore_bench.data.cache import SplitData
from alore_bench.data.images import fit
from alore_bench.data.loader import DeviceBatcher, Normalisation, iterate
from alore_bench.data.suites import Task


def make_jpegs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(375, 500, 3), dtype=np.uint8)
    paths = []
    for i in range(count):
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(np.roll(base, i * 7, axis=1)).save(path, quality=75)
        paths.append(path)
    return paths


def pil_batches(paths, batch_size, norm, device):
    mean = torch.tensor(norm.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(norm.std, device=device).view(1, 3, 1, 1)
    for start in range(0, len(paths), batch_size):
        batch = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BICUBIC))
                 for p in paths[start:start + batch_size]]
        tensor = torch.from_numpy(np.stack(batch)).to(device).permute(0, 3, 1, 2).float().div_(255)
        yield (tensor - mean) / std


def rate(batches, count, device) -> float:
    start = time.perf_counter()
    for batch in batches:
        batch = batch[0] if isinstance(batch, tuple) else batch
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    norm = Normalisation("half", (0.5,) * 3, (0.5,) * 3)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_jpegs(folder, args.images)
        # What `prepare` stores: decoded once, resized once to 224 x 224, memory-mapped at run time.
        cached = np.stack([fit(np.asarray(Image.open(p).convert("RGB")), (224, 224)) for p in paths])
        np.save(folder / "test.images.npy", cached)
        images = np.load(folder / "test.images.npy", mmap_mode="r")
        task = Task(name="bench", suite="bench", group="bench", classes=1, splits={})
        split = SplitData(task, "test", images, np.zeros(len(paths), np.int64), {})
        batcher = DeviceBatcher(224, norm, device)
        rate(iterate(split, batcher, args.batch_size), len(paths), device)  # warm the page cache
        cache_rate = rate(iterate(split, batcher, args.batch_size), len(paths), device)
        pil_rate = rate(pil_batches(paths, args.batch_size, norm, device), len(paths), device)
    print(f"{args.images} images of 500x375, batch {args.batch_size}, device {device}, "
          f"{torch.get_num_threads()} threads")
    print(f"  cache loader (uint8 .npy -> normalised batch)   {cache_rate:10.0f} images/s")
    print(f"  PIL decode + resize per batch                   {pil_rate:10.0f} images/s")
    print(f"  ratio                                           x{cache_rate / pil_rate:9.1f}")


if __name__ == "__main__":
    main()
