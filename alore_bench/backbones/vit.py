"""Vision Transformers: the ViT checkpoints of the ALoRE evaluation (Google's ImageNet-21k .npz
files, MoCo v3 and MAE) and the small offline `demo_vit`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import UserError, param
from .base import (BACKBONES, IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, BackboneSpec, WeightRelease,
                   WeightSource, file_sha256, load_state_dict_checked)

if TYPE_CHECKING:
    from torch import nn

GOOGLE_IN21K = "https://storage.googleapis.com/vit_models/imagenet21k/"
# "How to train your ViT?" (Steiner et al. 2022): the same architectures retrained on ImageNet-21k
# with AugReg. SSF's `vit_base_patch16_224_in21k` is this file, not the original release
# (dongzelian/SSF models/vision_transformer.py, default_cfgs, lines 121-123), at 0.5/0.5 and bicubic.
GOOGLE_AUGREG = "https://storage.googleapis.com/vit_models/augreg/"
DEMO_WEIGHTS = Path(__file__).with_name("weights") / "demo_vit.safetensors"
# demo_vit: 32 x 32 inputs, 4 x 4 patches (64 tokens), width 64, 4 blocks. Small enough to train
# the whole demo on two CPU cores in minutes, wide enough for 4 ALoRE experts.
DEMO_VIT_ARGS = dict(img_size=32, patch_size=4, embed_dim=64, depth=4, num_heads=4, mlp_ratio=4.0)


def build_timm(arch: str, num_classes: int, drop_path: float = 0.0, **kwargs) -> nn.Module:
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_path_rate=drop_path, **kwargs)


def build_demo_vit(num_classes: int, drop_path: float = 0.0) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(num_classes=num_classes, drop_path_rate=drop_path, **DEMO_VIT_ARGS)


def drop_mae_pretraining_parts(state: dict) -> dict:
    """MAE fine-tunes with global pooling: its final `norm` is deleted and a new `fc_norm` follows the
    pool (facebookresearch/mae models_vit.py, VisionTransformer.__init__, `del self.norm`); the
    decoder and mask token of full pretraining checkpoints are not part of the encoder."""
    return {k: v for k, v in state.items() if not k.startswith(("norm.", "decoder", "mask_token"))}


def google_vit(name: str, display: str, arch: str, file: str, tag: str, augreg: str = "") -> BackboneSpec:
    """A Google ViT: the original ImageNet-21k release by default (`--weights original`), and the
    AugReg ImageNet-21k release of the same architecture (`--weights augreg`) where there is one."""
    releases = (WeightRelease("augreg", augreg, GOOGLE_AUGREG + augreg, arch + ".augreg_in21k",
                              f"{display}, ImageNet-21k with AugReg (Steiner et al. 2022)"),) if augreg else ()
    return BackboneSpec(
        name=name, display=display, family="vit", input_size=224,
        summary=f"{display}, ImageNet-21k (Google's original release)",
        mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic",
        build=partial(build_timm, arch), weight_file=file, weight_url=GOOGLE_IN21K + file, weight_tag=tag,
        release="original" if augreg else "", releases=releases)


def resolve_demo_vit(weights: Optional[str], data_dir: Path) -> WeightSource:
    path = Path(weights).expanduser() if weights else DEMO_WEIGHTS
    if not path.is_file():
        fix = f"pass {param('weights', 'PATH')} to a demo_vit .safetensors file" if weights else \
            "reinstall alore-bench or run `python -m alore_bench.demo_pretrain`"
        raise UserError(f"backbone demo_vit: weights not found at {path}; {fix}")
    kind = "package" if path == DEMO_WEIGHTS else "safetensors"
    if kind != "package":
        from .checkpoints import check_container

        check_container(path)
    location = f"alore_bench/backbones/weights/{path.name}" if kind == "package" else str(path.resolve())
    return WeightSource(kind, location, file_sha256(path))


def load_demo_vit(model: nn.Module, source: WeightSource) -> None:
    from safetensors.torch import load_file

    from .checkpoints import read_checkpoint

    path = DEMO_WEIGHTS if source.kind == "package" else Path(source.location)
    state = load_file(str(path)) if source.kind == "package" else read_checkpoint(path)
    load_state_dict_checked(model, state, str(path))


VIT_B16_TAG = "vit_base_patch16_224.orig_in21k"
BACKBONES.register("vit_b16", google_vit("vit_b16", "ViT-B/16", "vit_base_patch16_224", "ViT-B_16.npz", VIT_B16_TAG,
                                         augreg="B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz"))
BACKBONES.register("vit_l16", google_vit("vit_l16", "ViT-L/16", "vit_large_patch16_224", "ViT-L_16.npz",
                                         "vit_large_patch16_224.orig_in21k",
                                         augreg="L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1.npz"))
BACKBONES.register("vit_h14", google_vit("vit_h14", "ViT-H/14", "vit_huge_patch14_224", "ViT-H_14.npz",
                                         "vit_huge_patch14_224.orig_in21k"))
BACKBONES.register("vit_b16_mocov3", BackboneSpec(
    name="vit_b16_mocov3", display="ViT-B/16 (MoCo v3)", family="vit", input_size=224,
    summary="ViT-B/16, MoCo v3 self-supervised on ImageNet-1k (its linear-probe checkpoint; the probe head is dropped)",
    # facebookresearch/moco-v3 main_lincls.py, main_worker's data loading: `transforms.Normalize(mean=[0.485,
    # 0.456, 0.406], ...)` and the val pipeline `transforms.Resize(256)` (torchvision's default, bilinear).
    # Its save_checkpoint writes {'epoch', 'arch', 'state_dict' (DDP `module.` keys), 'best_acc1', 'optimizer'}.
    mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear",
    build=partial(build_timm, "vit_base_patch16_224"), weight_file="linear-vit-b-300ep.pth.tar",
    weight_url="https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/linear-vit-b-300ep.pth.tar"))
BACKBONES.register("vit_b16_mae", BackboneSpec(
    name="vit_b16_mae", display="ViT-B/16 (MAE)", family="vit", input_size=224,
    summary="ViT-B/16, MAE self-supervised on ImageNet-1k, global average pooling with a new fc_norm as MAE fine-tunes",
    # facebookresearch/mae main_finetune.py / util/datasets.py: ImageNet mean/std, bicubic.
    mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic",
    build=partial(build_timm, "vit_base_patch16_224", global_pool="avg"), weight_file="mae_pretrain_vit_base.pth",
    weight_url="https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth",
    weight_tag="vit_base_patch16_224.mae", prepare_state=drop_mae_pretraining_parts, new_keys=("fc_norm.",)))
BACKBONES.register("demo_vit", BackboneSpec(
    name="demo_vit", display="Demo ViT", family="vit", input_size=32,
    summary="tiny ViT (32 px, width 64, 4 blocks) pretrained offline on a synthetic shape task",
    mean=INCEPTION_MEAN, std=INCEPTION_STD, interpolation="bicubic",
    build=build_demo_vit, resolver=resolve_demo_vit, loader=load_demo_vit,
    weight_tag="demo_vit.synthetic_shapes"))
