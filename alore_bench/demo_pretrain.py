"""Pretrain `demo_vit` offline on a synthetic source task and save its backbone weights.

Source task: name the shape (8 kinds) and the cell of a 3 x 3 grid its centre lies in (72
classes) in a 32 x 32 image with a random size, colour and background. Like ImageNet features,
the result knows objects and coarse layout. It shares drawing primitives with the demo suite, as
ImageNet shares objects with VTAB, but never sees a demo task's images or labels: no digits, no
textures, one shape per image (so no counting), and no fine position. The shipped weights were made with

    python -m alore_bench.demo_pretrain --out alore_bench/backbones/weights/demo_vit.safetensors
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from timm.layers import build_sincos2d_pos_embed

from .config import TrainConfig
from .data.cache import SplitData
from .data.loader import DeviceBatcher, Normalisation
from .data.suites import Task
from .engine import evaluate, train
from .data.synthetic import SHAPES, SIZE, background, paint, random_colour, shape_mask, to_uint8
from .backbones.vit import build_demo_vit

SOURCE_SEED = zlib.crc32(b"alore-bench/demo_vit/pretrain")


def source_images(count: int, seed: int = SOURCE_SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = rng.integers(0, len(SHAPES), size=count)
    labels = np.empty(count, np.int64)
    images = np.empty((count, SIZE, SIZE, 3), np.uint8)
    for i, shape in enumerate(shapes):
        image = background(rng)
        radius = rng.uniform(2.5, 7.0)
        cy, cx = rng.uniform(radius, SIZE - radius, size=2)
        paint(image, shape_mask(SHAPES[shape], cy, cx, radius), random_colour(rng, 0.45, 1.0))
        images[i] = to_uint8(image)
        cell = int(cy * 3 // SIZE) * 3 + int(cx * 3 // SIZE)
        labels[i] = shape * 9 + cell
    return images, labels


def pretrain(count: int = 16000, epochs: int = 15, batch_size: int = 128, lr: float = 1e-3,
             seed: int = 0) -> tuple[dict, float]:
    """Train demo_vit on the source task with the benchmark's own engine; returns (backbone state
    without head, accuracy on 2,000 held-out source images)."""
    from rich.progress import Progress

    images, labels = source_images(count + 2000)
    task = Task(name="shape_and_cell", suite="demo_vit_source", group="source", classes=len(SHAPES) * 9, splits={})
    train_data = SplitData(task, "train", images[:count], labels[:count], {})
    held_out = SplitData(task, "held_out", images[count:], labels[count:], {})
    torch.manual_seed(seed)
    model = build_demo_vit(num_classes=task.classes, drop_path=0.05)
    with torch.no_grad():  # start from 2-D sin-cos positions (as MAE and MoCo v3 do): a tiny ViT
        grid = model.patch_embed.grid_size  # learns position far too slowly from a random init
        model.pos_embed[0, 1:] = build_sincos2d_pos_embed(list(grid), dim=model.embed_dim)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.05, warmup_epochs=1,
                         drop_path=0.05)
    batcher = DeviceBatcher(SIZE, Normalisation("half", (0.5,) * 3, (0.5,) * 3), torch.device("cpu"))
    with Progress() as progress:
        train(model, train_data, batcher, config, seed, progress, "pretrain demo_vit")
        accuracy = evaluate(model, held_out, batcher, 500, progress).top1
    model.reset_classifier(0)
    return {k: v.contiguous() for k, v in model.state_dict().items()}, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    state, accuracy = pretrain(args.count, args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={
        "source_task": "synthetic shape x 3x3 cell naming (72 classes)", "count": str(args.count), "epochs": str(args.epochs),
        "held_out_accuracy": f"{accuracy:.4f}", "script": "alore_bench/demo_pretrain.py"})
    tmp.replace(args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
