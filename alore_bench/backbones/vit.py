"""Vision Transformer backbones: ViT-B/16 (ImageNet-21k, Google's original weights) and the
small offline `demo_vit`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import timm
from safetensors.torch import load_file
from timm.data import IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..errors import UserError
from .base import BACKBONES, BackboneSpec, WeightSource, file_sha256, load_state_dict_checked

VIT_B16_TAG = "vit_base_patch16_224.orig_in21k"
VIT_B16_NPZ = "ViT-B_16.npz"
VIT_B16_URL = "https://storage.googleapis.com/vit_models/imagenet21k/ViT-B_16.npz"

DEMO_WEIGHTS = Path(__file__).with_name("weights") / "demo_vit.safetensors"
# demo_vit: 32 x 32 inputs, 4 x 4 patches (64 tokens), width 64, 4 blocks. Small enough to train
# the whole demo on two CPU cores in minutes, wide enough for 4 ALoRE experts.
DEMO_VIT_ARGS = dict(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=4.0)


def build_vit_b16(num_classes: int, drop_path: float = 0.0) -> nn.Module:
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=num_classes,
                             drop_path_rate=drop_path)


def build_demo_vit(num_classes: int, drop_path: float = 0.0) -> nn.Module:
    return VisionTransformer(num_classes=num_classes, drop_path_rate=drop_path, **DEMO_VIT_ARGS)


def _hub_cached(tag: str) -> bool:
    """Whether timm's hub weights for `tag` are already in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with timm
        return False
    repo = timm.models.get_pretrained_cfg(tag).hf_hub_id
    if repo in (None, "", "timm/"):
        repo = f"timm/{tag}"
    return isinstance(try_to_load_from_cache(repo, "model.safetensors"), str)


def resolve_vit_b16(weights: Optional[str], data_dir: Path) -> WeightSource:
    if weights == "timm":
        return WeightSource("timm-hub", VIT_B16_TAG)
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"--weights {weights}: no such file; give the path to Google's {VIT_B16_NPZ} "
                            f"({VIT_B16_URL}) or --weights timm to use the timm tag {VIT_B16_TAG}")
        if path.suffix != ".npz":
            raise UserError(f"--weights {weights}: vit_b16 reads Google's original .npz checkpoint "
                            f"({VIT_B16_NPZ}); use --weights timm for timm's copy")
        return WeightSource("npz", str(path.resolve()), file_sha256(path))
    default = data_dir / "weights" / VIT_B16_NPZ
    if default.is_file():
        return WeightSource("npz", str(default.resolve()), file_sha256(default))
    if _hub_cached(VIT_B16_TAG):
        return WeightSource("timm-hub", VIT_B16_TAG)
    raise UserError(f"backbone vit_b16: pretrained weights not found at {default}; download {VIT_B16_URL} "
                    f"there, or pass --weights PATH/{VIT_B16_NPZ}, or --weights timm when the Hugging Face hub is reachable")


def load_vit_b16(model: nn.Module, source: WeightSource) -> None:
    if source.kind == "npz":
        # timm's own loader for Google's JAX checkpoints; it skips a head of another size.
        head = model.get_classifier()
        saved_head = {k: v.clone() for k, v in head.state_dict().items()}
        model.load_pretrained(source.location)
        head.load_state_dict(saved_head)  # the new head stays as initialised, whatever the npz holds
    elif source.kind == "timm-hub":
        pretrained = timm.create_model(source.location, pretrained=True, num_classes=0)
        load_state_dict_checked(model, pretrained.state_dict(), source.location)
    else:
        raise ValueError(f"vit_b16 cannot load weights of kind {source.kind!r}")


def resolve_demo_vit(weights: Optional[str], data_dir: Path) -> WeightSource:
    path = Path(weights).expanduser() if weights else DEMO_WEIGHTS
    if not path.is_file():
        fix = "pass --weights PATH to a demo_vit .safetensors file" if weights else \
            "reinstall alore-bench or run `python -m alore_bench.backbones.demo_pretrain`"
        raise UserError(f"backbone demo_vit: weights not found at {path}; {fix}")
    kind = "package" if path == DEMO_WEIGHTS else "safetensors"
    location = f"alore_bench/backbones/weights/{path.name}" if kind == "package" else str(path.resolve())
    return WeightSource(kind, location, file_sha256(path))


def load_demo_vit(model: nn.Module, source: WeightSource) -> None:
    path = DEMO_WEIGHTS if source.kind == "package" else Path(source.location)
    load_state_dict_checked(model, load_file(str(path)), str(path))


BACKBONES.register(
    "vit_b16",
    BackboneSpec(
        name="vit_b16",
        display="ViT-B/16",
        summary="ViT-B/16, ImageNet-21k (Google's original ViT-B_16.npz = timm " + VIT_B16_TAG + ")",
        family="vit",
        input_size=224,
        mean=IMAGENET_INCEPTION_MEAN,
        std=IMAGENET_INCEPTION_STD,
        interpolation="bicubic",
        build=build_vit_b16,
        resolve_weights=resolve_vit_b16,
        load_weights=load_vit_b16,
        weight_tag=VIT_B16_TAG,
    ),
)
BACKBONES.register(
    "demo_vit",
    BackboneSpec(
        name="demo_vit",
        display="Demo ViT",
        summary="tiny ViT (32 px, width 64, 4 blocks) pretrained offline on a synthetic shape task",
        family="vit",
        input_size=32,
        mean=IMAGENET_INCEPTION_MEAN,
        std=IMAGENET_INCEPTION_STD,
        interpolation="bicubic",
        build=build_demo_vit,
        resolve_weights=resolve_demo_vit,
        load_weights=load_demo_vit,
        weight_tag="demo_vit.synthetic_shapes",
    ),
)
