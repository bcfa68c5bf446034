"""Tiny models of the real architectures, shared by the tests."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer

from alore_bench.conformance import TINY_VIT as TINY_VIT_ARGS  # the tiny ViT the method contract uses


def make_tiny_vit(num_classes: int = 5, seed: int = 0) -> VisionTransformer:
    """A tiny model of the real timm ViT architecture (fused qkv, Mlp blocks)."""
    torch.manual_seed(seed)
    return VisionTransformer(num_classes=num_classes, **TINY_VIT_ARGS)
