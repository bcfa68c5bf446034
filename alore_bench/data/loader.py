"""Batches from the cache: uint8 arrays are indexed, moved to the device, then resized and
normalised there. No image is decoded during training or evaluation."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .cache import SplitData


@dataclass(frozen=True)
class Normalisation:
    name: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]

    def describe(self) -> dict:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


def resolve_normalisation(choice: str, backbone_mean: Sequence[float], backbone_std: Sequence[float]) -> Normalisation:
    if choice == "backbone":
        return Normalisation("backbone", tuple(backbone_mean), tuple(backbone_std))
    if choice == "imagenet":
        return Normalisation("imagenet", IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    if choice == "half":
        return Normalisation("half", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    raise ValueError(f"unknown normalisation {choice!r}")


class DeviceBatcher:
    """Turns uint8 (N, H, W, 3) images into normalised float batches at the model's resolution."""

    def __init__(self, input_size: int, norm: Normalisation, device: torch.device, interpolation: str = "bicubic",
                 antialias: bool = True, channels_last: bool = False):
        self.input_size = input_size
        # Convolution-heavy backbones run faster on CUDA with NHWC memory; ViTs gain nothing.
        self.channels_last = channels_last
        self.device = device
        self.interpolation = interpolation
        self.antialias = antialias
        std = torch.tensor(norm.std, device=device)
        # (x / 255 - mean) / std as one multiply-add on the channels-last uint8 layout.
        self.scale = 1.0 / (255.0 * std)
        self.shift = -torch.tensor(norm.mean, device=device) / std

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        batch = self._normalised(images)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def _normalised(self, images: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():
            # Slices of the read-only memory map are only read: the first op below copies them.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        if batch.shape[1:3] == (self.input_size, self.input_size):
            # Normalise in the stored channels-last layout, then view as NCHW.
            return batch.float().mul_(self.scale).add_(self.shift).permute(0, 3, 1, 2)
        # VTAB pipelines resize straight to the model resolution, ignoring aspect ratio.
        batch = batch.permute(0, 3, 1, 2).float()
        shrinking = batch.shape[-1] > self.input_size or batch.shape[-2] > self.input_size
        batch = F.interpolate(batch, size=(self.input_size, self.input_size), mode=self.interpolation,
                              align_corners=False,
                              antialias=self.antialias and shrinking and self.interpolation in ("bilinear", "bicubic"))
        batch = batch.clamp_(0.0, 255.0)
        return batch.mul_(self.scale.view(1, 3, 1, 1)).add_(self.shift.view(1, 3, 1, 1))


    def resized(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        """Crops of any sizes, each resized to the model's resolution on the device and rounded to
        8 bits (as a PIL image is), then normalised: a random-resized-crop batch."""
        size = (self.input_size, self.input_size)
        out = torch.empty((len(crops), size[0], size[1], 3), dtype=torch.uint8, device=self.device)
        for row, crop in enumerate(crops):
            image = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1)[None].float()
            shrinking = image.shape[-1] > size[1] or image.shape[-2] > size[0]
            image = F.interpolate(image, size=size, mode=self.interpolation, align_corners=False,
                                  antialias=self.antialias and shrinking and self.interpolation in ("bilinear", "bicubic"))
            out[row] = image[0].clamp_(0.0, 255.0).round_().permute(1, 2, 0).to(torch.uint8)
        batch = out.float().mul_(self.scale).add_(self.shift).permute(0, 3, 1, 2)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch


# Random resized crops as torchvision's RandomResizedCrop and timm's RandomResizedCropAndInterpolation
# (SSF's --simple-aug, data/transforms_factory.py transforms_simpleaug_train) draw them: a share of the
# area and a log-uniform aspect ratio, ten tries, then the whole image at the nearest allowed aspect.
RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def random_resized_box(height: int, width: int, rng: np.random.Generator) -> Tuple[int, int, int, int]:
    """(top, left, h, w) of one random resized crop of a height x width image."""
    area = height * width
    log_ratio = (math.log(RRC_RATIO[0]), math.log(RRC_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*RRC_SCALE)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    shape = width / height
    if shape < RRC_RATIO[0]:
        w, h = width, int(round(width / RRC_RATIO[0]))
    elif shape > RRC_RATIO[1]:
        h, w = height, int(round(height * RRC_RATIO[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crops(split: SplitData, idx: np.ndarray, rng: np.random.Generator) -> list:
    """One random resized crop of each image, mirrored with probability 1/2 (pure slicing)."""
    crops = []
    for index in idx:
        image = split.image(int(index)) if split.ragged else split.images[int(index)]
        top, left, h, w = random_resized_box(image.shape[0], image.shape[1], rng)
        crop = image[top:top + h, left:left + w]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return crops


def batch_indices(count: int, batch_size: int, shuffle: bool, seed: int, epoch: int) -> Iterator[np.ndarray]:
    """Index batches; a shuffled order depends only on (seed, epoch)."""
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(count, generator=generator).numpy()
    else:
        order = np.arange(count)
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]


def _rows(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """array[idx], as a plain slice when idx is a contiguous run (cheaper on memory maps)."""
    if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
        return array[idx[0]:idx[-1] + 1]
    return array[idx]


CROP = 224  # VPT's FGVC crop from images stored at short side 256


def crop_batch(split: SplitData, idx: np.ndarray, rng: Optional[np.random.Generator]) -> np.ndarray:
    """CROP x CROP crops of a ragged split's images: random position and horizontal flip when `rng`
    is given (training), the centre otherwise. Pure slicing, no decoding."""
    out = np.empty((len(idx), CROP, CROP, 3), np.uint8)
    for row, index in enumerate(idx):
        image = split.image(int(index))
        h, w = image.shape[:2]
        if rng is None:  # rounded as torchvision's CenterCrop (VPT's FGVC test transform) rounds
            top, left = int(round((h - CROP) / 2.0)), int(round((w - CROP) / 2.0))
        else:
            top, left = int(rng.integers(0, h - CROP + 1)), int(rng.integers(0, w - CROP + 1))
        crop = image[top:top + CROP, left:left + CROP]
        out[row] = crop[:, ::-1] if rng is not None and rng.random() < 0.5 else crop
    return out


def flip_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image mirrored left-right with probability 1/2 (torchvision's RandomHorizontalFlip)."""
    mirrored = rng.random(len(images)) < 0.5
    if not mirrored.any():
        return images
    out = np.array(images)  # a copy: the split may be a read-only memory map
    out[mirrored] = out[mirrored, :, ::-1]
    return out


def iterate(split: SplitData, batcher: DeviceBatcher, batch_size: int, shuffle: bool = False,
            seed: int = 0, epoch: int = 0, flip: bool = False,
            train_crop: str = "protocol") -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Batches in order, or shuffled by (seed, epoch). Ragged (FGVC training) splits are cropped:
    randomly with flips when shuffled for training, at the centre otherwise. With `flip`, shuffled
    fixed-size images are mirrored at random; with `train_crop="random_resized"`, shuffled images
    are random resized crops with flips. The draws depend only on (seed, epoch, batch)."""
    for number, idx in enumerate(batch_indices(len(split), batch_size, shuffle, seed, epoch)):
        rng = np.random.default_rng([seed, epoch, number]) if shuffle else None
        if rng is not None and train_crop == "random_resized":
            images = batcher.resized(random_resized_crops(split, idx, rng))
        elif split.ragged:
            images = batcher(crop_batch(split, idx, rng))
        elif flip and rng is not None:
            images = batcher(flip_batch(_rows(split.images, idx), rng))
        else:
            images = batcher(_rows(split.images, idx))
        labels = torch.from_numpy(np.ascontiguousarray(_rows(split.labels, idx))).to(batcher.device, non_blocking=True)
        yield images, labels


def num_batches(count: int, batch_size: int) -> int:
    return (count + batch_size - 1) // batch_size
