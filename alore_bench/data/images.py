"""Image conversion for the cache: RGB uint8 at native size, or resized once to the cache
resolution when larger (VTAB pipelines resize straight to 224 x 224, ignoring aspect)."""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

CACHE_RESOLUTION = 224
RESIZE_NOTE = f"PIL bicubic straight to {CACHE_RESOLUTION}x{CACHE_RESOLUTION} when larger or of varying size"
# The VTAB pipeline of task_adaptation and VPT (tf.image.resize, TF2's default: bilinear, half-pixel
# centres, no anti-aliasing), which F.interpolate(bilinear, align_corners=False) computes too.
TF_RESIZE_NOTE = (f"bilinear without anti-aliasing (as tf.image.resize) straight to {CACHE_RESOLUTION}x"
                  f"{CACHE_RESOLUTION} when larger or of varying size, rounded to uint8")


def storage_size(shape: Optional[Sequence[Optional[int]]]) -> Tuple[int, int]:
    """(H, W) to store a split at: the static native size when it fits, else the cache resolution."""
    if shape is not None and len(shape) >= 2 and shape[0] and shape[1] \
            and shape[0] <= CACHE_RESOLUTION and shape[1] <= CACHE_RESOLUTION:
        return int(shape[0]), int(shape[1])
    return CACHE_RESOLUTION, CACHE_RESOLUTION


def fit(image: np.ndarray, size: Tuple[int, int], method: str = "pil_bicubic") -> np.ndarray:
    """An RGB uint8 image of exactly `size`, resized only when it differs: with PIL bicubic (NOAH's
    folders) or TF-style bilinear without anti-aliasing (`tf_bilinear`, VPT's TFDS pipeline)."""
    if image.shape[:2] == tuple(size):
        return image
    if method == "tf_bilinear":
        import torch
        import torch.nn.functional as F

        batch = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double()
        resized = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
        return resized[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    if method != "pil_bicubic":
        raise ValueError(f"unknown resize method {method!r}")
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC)
    return np.asarray(resized, dtype=np.uint8)


@contextmanager
def opened_image(read: Union[Path, Callable[[], bytes]], name: str, where: str) -> Iterator[Image.Image]:
    """Open an image (a file, or bytes from `read()`), turning a missing or undecodable image into a
    one-line error that names the list file and line (`where`) and the image (`name`)."""
    try:
        try:
            data = read.read_bytes() if isinstance(read, Path) else read()
        except UserError as exc:  # refused by the reader (symlink out of the root, FIFO, size cap)
            raise UserError(f"{where}: {exc}") from None
        with Image.open(io.BytesIO(data)) as image:
            yield image
    except (KeyError, FileNotFoundError):
        raise UserError(f"{where}: image {name} does not exist") from None
    except Image.DecompressionBombError as exc:  # declared pixels far beyond any benchmark image
        raise UserError(f"{where}: image {name} refused: {str(exc).split('.')[0]} (PIL's decompression-bomb "
                        "limit)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UserError(f"{where}: image {name} is unreadable ({exc})") from None


def decode_rgb(read: Union[Path, Callable[[], bytes]], name: str, where: str) -> np.ndarray:
    with opened_image(read, name, where) as image:
        return np.asarray(image.convert("RGB"))
