"""`--backbone timm:<model name>`: any timm model whose blocks the site finder knows (ViT, DeiT,
Swin, ConvNeXt, Mixer, ...), with `--weights timm` (its hub tag) or a weights file (DINOv2, CLIP,
AugReg ...: converted by timm's own checkpoint filter for that architecture)."""

from __future__ import annotations

import difflib
from functools import partial

import timm
import torch

from ..errors import UserError, param
from .base import BACKBONES, BackboneSpec
from .sites import family_of
from .vit import build_timm

PREFIX = "timm:"


def timm_backbone(name: str) -> BackboneSpec:
    tag = name[len(PREFIX):]
    arch, _, _pretrained = tag.partition(".")
    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see timm.list_models() for the names"
        raise UserError(f"{param('backbone', name)}: timm has no model {arch!r}; {hint}")
    cfg = timm.models.get_pretrained_cfg(tag) if "." in tag else None
    with torch.device("meta"):
        model = timm.create_model(arch, pretrained=False, num_classes=0)
    cfg = cfg or model.pretrained_cfg
    get = cfg.get if isinstance(cfg, dict) else lambda key: getattr(cfg, key)
    family = family_of(model)
    if family not in ("vit", "swin", "mixer", "convnext"):
        raise UserError(f"{param('backbone', name)}: {type(model).__name__} is not a family the methods know where to attach "
                        "to (ViT, DeiT, Swin, ConvNeXt, MLP-Mixer and their timm variants)")
    size = get("input_size")[-1]
    return BackboneSpec(
        name=name, display=tag, family=family, input_size=int(size),
        summary=f"timm {tag} ({type(model).__name__})",
        mean=tuple(get("mean")), std=tuple(get("std")), interpolation=get("interpolation") or "bicubic",
        build=partial(build_timm, arch), weight_tag=tag,
        channels_last=family == "convnext")


BACKBONES.register_prefix(PREFIX, timm_backbone)
