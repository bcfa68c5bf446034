"""Pretrain `demo_vit` offline on a synthetic source task and save its backbone weights.

Source task: name the shape (8 kinds) and the cell of a 3 x 3 grid its centre lies in (72
classes) in a 32 x 32 image with a random size, colour and background. Like ImageNet features,
the result knows objects and coarse layout. It shares drawing primitives with the demo suite, as
ImageNet shares objects with VTAB, but never sees a demo task's images or labels: no digits, no
textures, one shape per image (so no counting), and no fine position. The shipped weights were made with

    python -m alore_bench.backbones.demo_pretrain --out alore_bench/backbones/weights/demo_vit.safetensors
"""

from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.layers import build_sincos2d_pos_embed
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler

from ..data.synthetic import SHAPES, SIZE, background, paint, random_colour, shape_mask, to_uint8
from .vit import build_demo_vit

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
             seed: int = 0, log=print) -> tuple[dict, float]:
    """Train demo_vit on the source task; returns (backbone state without head, held-out accuracy)."""
    torch.manual_seed(seed)
    images, labels = source_images(count + 2000)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    y = torch.from_numpy(labels)
    x_train, y_train, x_val, y_val = x[:count], y[:count], x[count:], y[count:]
    model = build_demo_vit(num_classes=len(SHAPES) * 9, drop_path=0.05)
    with torch.no_grad():  # start from 2-D sin-cos positions (as MAE and MoCo v3 do): a tiny ViT
        grid = model.patch_embed.grid_size  # learns position far too slowly from a random init
        model.pos_embed[0, 1:] = build_sincos2d_pos_embed(list(grid), dim=model.embed_dim)
    optimizer = create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=0.05)
    steps = epochs * ((count + batch_size - 1) // batch_size)
    scheduler = CosineLRScheduler(optimizer, t_initial=steps, lr_min=1e-5, warmup_t=steps // 20,
                                  warmup_lr_init=1e-6, warmup_prefix=False, t_in_epochs=False)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(count, generator=generator)
        start, loss_sum = time.perf_counter(), 0.0
        for i in range(0, count, batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            scheduler.step_update(step)
            loss_sum += loss.item() * len(idx)
        accuracy = held_out_accuracy(model, x_val, y_val)
        log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / count:.3f}, held-out accuracy {accuracy:.3f} "
            f"({time.perf_counter() - start:.0f}s)")
    model.reset_classifier(0)
    return {k: v.contiguous() for k, v in model.state_dict().items()}, accuracy


@torch.no_grad()
def held_out_accuracy(model, x, y) -> float:
    model.eval()
    return float((model(x).argmax(-1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=16000)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    state, accuracy = pretrain(args.count, args.epochs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={
        "source_task": "synthetic shape naming (8 kinds)", "count": str(args.count), "epochs": str(args.epochs),
        "held_out_accuracy": f"{accuracy:.4f}", "script": "alore_bench/backbones/demo_pretrain.py"})
    tmp.replace(args.out)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
