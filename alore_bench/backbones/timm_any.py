"""`--backbone timm:<model name>`: any timm model whose blocks the site finder knows (ViT, DeiT,
Swin, ConvNeXt, Mixer, ...), with `--weights timm` (its hub tag) or a weights file (DINOv2, CLIP,
AugReg ...: converted by timm's own checkpoint filter for that architecture)."""

from __future__ import annotations

import difflib
from functools import partial

from ..errors import UserError, param
from .base import BACKBONES, BackboneSpec
from .vit import build_timm

PREFIX = "timm:"


def timm_backbone(name: str) -> BackboneSpec:
    """The entry of a `timm:` name, from what timm says of the model (kept in the code cache, so a
    warm cache builds it without importing timm)."""
    from ..code_cache import cached

    facts = cached(f"timm-backbone/{name}", lambda: timm_facts(name), registered_here=False,
                   valid=lambda value: isinstance(value, dict) and set(value) == FACTS)
    tag = name[len(PREFIX):]
    return BackboneSpec(
        name=name, display=tag, family=facts["family"], input_size=int(facts["input_size"]),
        summary=f"timm {tag} ({facts['model_class']})",
        mean=tuple(facts["mean"]), std=tuple(facts["std"]), interpolation=facts["interpolation"],
        build=partial(build_timm, facts["arch"]), weight_tag=tag,
        channels_last=facts["family"] == "convnext")


FACTS = {"arch", "family", "input_size", "mean", "std", "interpolation", "model_class"}


def timm_facts(name: str) -> dict:
    """Architecture, family and input pipeline of a timm model (a UserError for names timm does not
    have or families the methods cannot attach to)."""
    import timm
    import torch

    from .sites import family_of

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
    return {"arch": arch, "family": family, "input_size": int(get("input_size")[-1]),
            "mean": [float(v) for v in get("mean")], "std": [float(v) for v in get("std")],
            "interpolation": get("interpolation") or "bicubic", "model_class": type(model).__name__}


BACKBONES.register_prefix(PREFIX, timm_backbone)
