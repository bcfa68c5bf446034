"""Swin-B, ConvNeXt-B and MLP-Mixer-B/16 as the ALoRE evaluation uses them (ImageNet-21k/22k),
loaded from the files their authors publish through timm's checkpoint filters."""

from __future__ import annotations

from functools import partial

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD

from .base import BACKBONES, BackboneSpec
from .vit import build_timm

BACKBONES.register("swin_b", BackboneSpec(
    name="swin_b", display="Swin-B", family="swin", input_size=224,
    summary="Swin-B (patch 4, window 7, 224), ImageNet-22k (microsoft/Swin-Transformer's release)",
    mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, interpolation="bicubic",
    build=partial(build_timm, "swin_base_patch4_window7_224"), weight_file="swin_base_patch4_window7_224_22k.pth",
    weight_url="https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224_22k.pth",
    weight_tag="swin_base_patch4_window7_224.ms_in22k"))
BACKBONES.register("convnext_b", BackboneSpec(
    name="convnext_b", display="ConvNeXt-B", family="convnext", input_size=224,
    summary="ConvNeXt-B (224), ImageNet-22k (facebookresearch/ConvNeXt's release)",
    mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, interpolation="bicubic",
    build=partial(build_timm, "convnext_base"), weight_file="convnext_base_22k_224.pth",
    weight_url="https://dl.fbaipublicfiles.com/convnext/convnext_base_22k_224.pth",
    weight_tag="convnext_base.fb_in22k", channels_last=True))
BACKBONES.register("mixer_b16", BackboneSpec(
    name="mixer_b16", display="Mixer-B/16", family="mixer", input_size=224,
    summary="MLP-Mixer-B/16, ImageNet-21k (timm's port of Google's release)",
    mean=IMAGENET_INCEPTION_MEAN, std=IMAGENET_INCEPTION_STD, interpolation="bicubic",
    build=partial(build_timm, "mixer_b16_224"), weight_file="jx_mixer_b16_224_in21k-617b3de2.pth",
    weight_url="https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
               "jx_mixer_b16_224_in21k-617b3de2.pth",
    weight_tag="mixer_b16_224.goog_in21k"))
