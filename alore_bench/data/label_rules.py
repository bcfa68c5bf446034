"""VTAB-1k label rules for the Structured tasks, as the official task_adaptation code defines
them (see README, "Data"). Each rule maps one decoded TFDS example to (image, label) and raises
LabelRuleError for an example that has no valid label under the official definition."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Tuple

import numpy as np


class LabelRuleError(ValueError):
    pass


Example = Mapping[str, Any]
Rule = Callable[[Example], Tuple[np.ndarray, int]]

CLEVR_DISTANCE_THRESHOLDS = (0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0)
KITTI_DISTANCE_THRESHOLDS = (-100.0, 8.0, 20.0, 999.0)
KITTI_VEHICLE_TYPES = 3  # TFDS kitti types 0, 1, 2 = Car, Van, Truck
KITTI_NO_VEHICLE = 1000.0


def bin_above(value: float, thresholds: Tuple[float, ...], classes: int) -> int:
    """The largest i with thresholds[i] < value (the official thresholding rule)."""
    below = [i for i, t in enumerate(thresholds) if t < value]
    if not below or below[-1] >= classes:
        raise LabelRuleError(f"value {value} lies outside the label thresholds {thresholds}")
    return below[-1]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3); a single channel is repeated, as the official code does for smallNORB."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.shape[-1] != 3:
        raise LabelRuleError(f"expected 1 or 3 channels, got shape {image.shape}")
    return image.astype(np.uint8, copy=False)


def plain_label(example: Example) -> Tuple[np.ndarray, int]:
    return to_rgb(example["image"]), int(example["label"])


def clevr_count(example: Example) -> Tuple[np.ndarray, int]:
    """Number of objects minus 3 (CLEVR scenes hold 3 to 10 objects): 8 classes."""
    count = len(example["objects"]["size"])
    if not 3 <= count <= 10:
        raise LabelRuleError(f"CLEVR scene with {count} objects; count_all expects 3 to 10")
    return to_rgb(example["image"]), count - 3


def clevr_closest_distance(example: Example) -> Tuple[np.ndarray, int]:
    """Depth of the closest object (min of pixel_coords[:, 2]) binned by the official thresholds."""
    coords = np.asarray(example["objects"]["pixel_coords"], dtype=np.float64).reshape(-1, 3)
    if len(coords) == 0:
        raise LabelRuleError("CLEVR scene without objects")
    return to_rgb(example["image"]), bin_above(float(coords[:, 2].min()), CLEVR_DISTANCE_THRESHOLDS, 6)


def kitti_closest_vehicle_distance(example: Example) -> Tuple[np.ndarray, int]:
    """Distance z of the closest Car/Van/Truck: <= 8 m, (8, 20], (20, 999], or no vehicle."""
    objects = example["objects"]
    types = np.asarray(objects["type"]).reshape(-1)
    depth = np.asarray(objects["location"], dtype=np.float64).reshape(-1, 3)[:, 2]
    if len(types) != len(depth):
        raise LabelRuleError(f"KITTI objects disagree: {len(types)} types but {len(depth)} locations")
    vehicle_depths = depth[types < KITTI_VEHICLE_TYPES]
    closest = min(vehicle_depths.min(initial=KITTI_NO_VEHICLE), KITTI_NO_VEHICLE)
    return to_rgb(example["image"]), bin_above(closest, KITTI_DISTANCE_THRESHOLDS, 4)


def _dsprites(attribute: str, original_classes: int) -> Rule:
    def rule(example: Example) -> Tuple[np.ndarray, int]:
        value = int(example[attribute])
        if not 0 <= value < original_classes:
            raise LabelRuleError(f"dSprites {attribute}={value} outside [0, {original_classes})")
        # 16 bins: floor(value / (K / 16)), computed exactly in integers.
        label = value * 16 // original_classes
        # Binary 0/1 images become 0/255 with 3 channels.
        image = np.asarray(example["image"])
        return to_rgb((image > 0).astype(np.uint8) * 255), label

    rule.__name__ = f"dsprites_{attribute}"
    return rule


def _smallnorb(attribute: str, classes: int) -> Rule:
    def rule(example: Example) -> Tuple[np.ndarray, int]:
        value = int(example[attribute])
        if not 0 <= value < classes:
            raise LabelRuleError(f"smallNORB {attribute}={value} outside [0, {classes})")
        return to_rgb(example["image"]), value  # the first camera only; image2 is not used

    rule.__name__ = f"smallnorb_{attribute}"
    return rule


LABEL_RULES: Dict[str, Rule] = {
    "plain": plain_label,
    "clevr_count": clevr_count,
    "clevr_closest_distance": clevr_closest_distance,
    "kitti_closest_vehicle_distance": kitti_closest_vehicle_distance,
    "dsprites_x_position": _dsprites("label_x_position", 32),
    "dsprites_orientation": _dsprites("label_orientation", 40),
    "smallnorb_azimuth": _smallnorb("label_azimuth", 18),
    "smallnorb_elevation": _smallnorb("label_elevation", 9),
}
