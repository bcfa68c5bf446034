"""The offline demo suite: four tasks with VTAB-1k-shaped splits, built deterministically.

digits (Natural) uses the real handwritten digits bundled with scikit-learn; the others are
generated. Every task uses its own seed, and none shares a generator stream with demo_vit's
pretraining data (see alore_bench/demo_pretrain.py).
"""

from __future__ import annotations

import zlib
from typing import Callable, Dict, Tuple

import numpy as np

from .suites import Task
from .synthetic import SHAPES, SIZE, _XX, _YY, background, paint, random_colour, shape_mask, to_uint8

Arrays = Tuple[np.ndarray, np.ndarray]


def _rng(task: str, part: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"alore-bench/demo/{task}/{part}".encode()))


def _render_digit(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Place one 8x8 digit (values 0..16), upscaled to 16-24 px, at a random spot in a tinted image."""
    from PIL import Image

    side = int(rng.integers(16, 25))
    glyph = Image.fromarray((digit * (255.0 / 16.0)).astype(np.uint8)).resize((side, side), Image.BILINEAR)
    ink = np.asarray(glyph, dtype=np.float32) / 255.0
    top, left = rng.integers(0, SIZE - side + 1, size=2)
    alpha = np.zeros((SIZE, SIZE), np.float32)
    alpha[top:top + side, left:left + side] = ink
    image = background(rng, noise=0.05)
    colour = random_colour(rng, 0.55, 1.0)
    return to_uint8(image * (1 - alpha[..., None]) + colour * alpha[..., None])


def make_digits(task: Task) -> Dict[str, Arrays]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, digits.target.astype(np.int64)
    order = _rng(task.name, "split").permutation(len(labels))
    train_src, test_src = order[:1000], order[1000:]
    render = _rng(task.name, "render")
    train_x = np.stack([_render_digit(images[i], render) for i in train_src])
    train_y = labels[train_src]
    # Test digits are disjoint from training digits; each is rendered twice (different placement).
    test_ids = np.concatenate([test_src, test_src])
    test_x = np.stack([_render_digit(images[i], render) for i in test_ids])
    test_y = labels[test_ids]
    return _vtab_splits(train_x, train_y, test_x, test_y)


def make_textures(task: Task) -> Dict[str, Arrays]:
    rng = _rng(task.name, "all")
    count = 1000 + task.splits["test"]
    labels = rng.integers(0, task.classes, size=count)
    images = np.stack([_texture(int(label), rng) for label in labels])
    return _split_generated(images, labels)


def _texture(kind: int, rng: np.random.Generator) -> np.ndarray:
    period = rng.uniform(4.0, 9.0)
    phase = rng.uniform(0, 2 * np.pi)
    jitter = rng.normal(0, 0.12)
    if kind in (0, 1, 2):  # stripes at 0, 45 and 90 degrees
        angle = (0.0, np.pi / 4, np.pi / 2)[kind] + jitter
        field = np.sin(2 * np.pi * (np.cos(angle) * _XX + np.sin(angle) * _YY) / period + phase)
    elif kind == 3:  # checks
        field = np.sin(2 * np.pi * _XX / period + phase) * np.sin(2 * np.pi * _YY / period + phase)
    elif kind == 4:  # dots on a lattice
        field = (np.cos(2 * np.pi * _XX / period + phase) + np.cos(2 * np.pi * _YY / period + phase)) - 1.0
    else:  # smooth random blobs
        coarse = rng.normal(size=(5, 5))
        from PIL import Image
        field = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((SIZE, SIZE), Image.BICUBIC))
        field = field / (np.abs(field).max() + 1e-6)
    field = np.tanh(2.0 * field)[..., None]
    low, high = random_colour(rng, 0.0, 0.5), random_colour(rng, 0.5, 1.0)
    image = low + (high - low) * (field + 1) / 2 + rng.normal(0, 0.15, size=(SIZE, SIZE, 3))
    return to_uint8(image)


def make_count_shapes(task: Task) -> Dict[str, Arrays]:
    rng = _rng(task.name, "all")
    count = 1000 + task.splits["test"]
    labels = rng.integers(0, task.classes, size=count)
    images = np.stack([_count_image(int(label) + 1, rng) for label in labels])
    return _split_generated(images, labels)


def _count_image(objects: int, rng: np.random.Generator) -> np.ndarray:
    image = background(rng)
    cells = rng.choice(16, size=objects, replace=False)  # a 4 x 4 grid of 8 px cells keeps shapes apart
    for cell in cells:
        cy = (cell // 4) * 8 + 4 + rng.uniform(-1.2, 1.2)
        cx = (cell % 4) * 8 + 4 + rng.uniform(-1.2, 1.2)
        paint(image, shape_mask(SHAPES[rng.integers(len(SHAPES))], cy, cx, rng.uniform(1.8, 3.0)),
              random_colour(rng, 0.5, 1.0))
    return to_uint8(image)


def make_locate_shape(task: Task) -> Dict[str, Arrays]:
    rng = _rng(task.name, "all")
    count = 1000 + task.splits["test"]
    bins = task.classes
    labels = rng.integers(0, bins, size=count)
    images = []
    for label in labels:
        image = background(rng)
        width = SIZE / bins
        cx = (label + rng.uniform(0.1, 0.9)) * width
        cy = rng.uniform(5, SIZE - 5)
        paint(image, shape_mask(SHAPES[rng.integers(len(SHAPES))], cy, cx, rng.uniform(2.0, 4.0)),
              random_colour(rng, 0.5, 1.0))
        images.append(to_uint8(image))
    return _split_generated(np.stack(images), labels)


def _split_generated(images: np.ndarray, labels: np.ndarray) -> Dict[str, Arrays]:
    return _vtab_splits(images[:1000], labels[:1000], images[1000:], labels[1000:])


def _vtab_splits(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> Dict[str, Arrays]:
    """train800 = the first 800, val200 = the next 200, train800val200 = both, test = the rest."""
    return {
        "train800": (train_x[:800], train_y[:800]),
        "val200": (train_x[800:1000], train_y[800:1000]),
        "train800val200": (train_x[:1000], train_y[:1000]),
        "test": (test_x, test_y),
    }


GENERATORS: Dict[str, Callable[[Task], Dict[str, Arrays]]] = {
    "digits": make_digits,
    "textures": make_textures,
    "count_shapes": make_count_shapes,
    "locate_shape": make_locate_shape,
}
