"""Image conversion for the cache: RGB uint8 at native size, or resized once to the cache
resolution when larger (VTAB pipelines resize straight to 224 x 224, ignoring aspect)."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image

CACHE_RESOLUTION = 224
RESIZE_NOTE = f"PIL bicubic straight to {CACHE_RESOLUTION}x{CACHE_RESOLUTION} when larger or of varying size"


def storage_size(shape: Optional[Sequence[Optional[int]]]) -> Tuple[int, int]:
    """(H, W) to store a split at: the static native size when it fits, else the cache resolution."""
    if shape is not None and len(shape) >= 2 and shape[0] and shape[1] \
            and shape[0] <= CACHE_RESOLUTION and shape[1] <= CACHE_RESOLUTION:
        return int(shape[0]), int(shape[1])
    return CACHE_RESOLUTION, CACHE_RESOLUTION


def fit(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """An RGB uint8 image of exactly `size`; resized with PIL bicubic only when it differs."""
    if image.shape[:2] == tuple(size):
        return image
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)
