"""Deterministic drawing primitives for the demo suite and demo_vit's pretraining source task."""

from __future__ import annotations

import numpy as np

SIZE = 32
SHAPES = ("circle", "square", "diamond", "triangle", "cross", "ring", "hbar", "vbar")
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def shape_mask(kind: str, cy: float, cx: float, radius: float) -> np.ndarray:
    """A boolean (SIZE, SIZE) mask of one shape centred at (cy, cx)."""
    dy, dx = _YY - cy, _XX - cx
    if kind == "circle":
        return dy**2 + dx**2 <= radius**2
    if kind == "square":
        return (np.abs(dy) <= radius * 0.85) & (np.abs(dx) <= radius * 0.85)
    if kind == "diamond":
        return np.abs(dy) + np.abs(dx) <= radius
    if kind == "triangle":
        return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)
    if kind == "cross":
        arm = max(radius * 0.3, 0.6)
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= radius)) | ((np.abs(dx) <= arm) & (np.abs(dy) <= radius))
    if kind == "ring":
        dist2 = dy**2 + dx**2
        return (dist2 <= radius**2) & (dist2 >= (radius * 0.55) ** 2)
    if kind == "hbar":
        return (np.abs(dy) <= max(radius * 0.35, 0.6)) & (np.abs(dx) <= radius)
    if kind == "vbar":
        return (np.abs(dx) <= max(radius * 0.35, 0.6)) & (np.abs(dy) <= radius)
    raise ValueError(f"unknown shape {kind!r}")


def random_colour(rng: np.random.Generator, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def background(rng: np.random.Generator, noise: float = 0.08) -> np.ndarray:
    """A smooth random gradient between two dark colours, plus pixel noise; float (SIZE, SIZE, 3)."""
    a, b = random_colour(rng, 0.0, 0.45), random_colour(rng, 0.0, 0.45)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * _XX + np.sin(angle) * _YY) / SIZE
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    image = a + (b - a) * t[..., None]
    return image + rng.normal(0, noise, size=image.shape).astype(np.float32)


def paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    image[mask] = colour


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
