"""Swin-B, ConvNeXt-B and MLP-Mixer-B/16 as the ALoRE evaluation uses them (ImageNet-21k/22k),
loaded from the files their authors publish through timm's checkpoint filters."""

from __future__ import annotations

from functools import partial

from .base import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, BackboneSpec
from .vit import build_timm


def published(name: str, display: str, family: str, arch: str, file: str, url: str, tag: str, summary: str,
              imagenet_norm: bool, **extra) -> BackboneSpec:
    """A 224-pixel, bicubic timm architecture with its authors' published weights file."""
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet_norm else (INCEPTION_MEAN, INCEPTION_STD)
    return BackboneSpec(name=name, display=display, family=family, input_size=224, summary=summary, mean=mean,
                        std=std, interpolation="bicubic", build=partial(build_timm, arch), weight_file=file,
                        weight_url=url, weight_tag=tag, **extra)


BACKBONES.register("swin_b", published(
    "swin_b", "Swin-B", "swin", "swin_base_patch4_window7_224", "swin_base_patch4_window7_224_22k.pth",
    "https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth",
    "swin_base_patch4_window7_224.ms_in22k",
    "Swin-B (patch 4, window 7, 224), ImageNet-22k (microsoft/Swin-Transformer's release)", imagenet_norm=True))
BACKBONES.register("convnext_b", published(
    "convnext_b", "ConvNeXt-B", "convnext", "convnext_base", "convnext_base_22k_224.pth",
    "https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth", "convnext_base.fb_in22k",
    "ConvNeXt-B (224), ImageNet-22k (facebookresearch/ConvNeXt's release)", imagenet_norm=True, channels_last=True))
BACKBONES.register("mixer_b16", published(
    "mixer_b16", "Mixer-B/16", "mixer", "mixer_b16_224", "jx_mixer_b16_224_in21k-617b3de2.pth",
    "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
    "jx_mixer_b16_224_in21k-617b3de2.pth", "mixer_b16_224.goog_in21k",
    "MLP-Mixer-B/16, ImageNet-21k (timm's port of Google's release)", imagenet_norm=False))
