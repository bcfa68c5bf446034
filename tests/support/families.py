"""Tiny models of every backbone family's real timm architecture, and fixture checkpoints written
in each published file's exact format and key layout (Google's .npz, MoCo v3's DDP-wrapped
.pth.tar, MAE's and Swin's and ConvNeXt's `model` dicts in their authors' key names, timm's Mixer
.pth), for the real loaders to read."""

from __future__ import annotations

import dataclasses
import re
from functools import partial
from pathlib import Path

import numpy as np
import torch
from timm.models.convnext import ConvNeXt
from timm.models.mlp_mixer import MlpMixer
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

from alore_bench.backbones import BACKBONES, BackboneSpec


TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


def _vit(num_classes: int = 0, drop_path: float = 0.0, **extra):
    return VisionTransformer(num_classes=num_classes, drop_path_rate=drop_path, **TINY_VIT, **extra)


def _swin(num_classes: int = 0, drop_path: float = 0.0):
    return SwinTransformer(img_size=32, patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4,
                           num_classes=num_classes, drop_path_rate=drop_path)


def _convnext(num_classes: int = 0, drop_path: float = 0.0):
    return ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 16, 32), num_classes=num_classes, drop_path_rate=drop_path)


def _mixer(num_classes: int = 0, drop_path: float = 0.0):
    return MlpMixer(img_size=32, patch_size=4, num_blocks=2, embed_dim=32, num_classes=num_classes,
                    drop_path_rate=drop_path)


TINY_BUILDS = {
    "vit_b16": _vit, "vit_l16": _vit, "vit_h14": _vit, "vit_b16_mocov3": _vit,
    "vit_b16_mae": partial(_vit, global_pool="avg"), "swin_b": _swin, "convnext_b": _convnext, "mixer_b16": _mixer,
}
# One registered backbone per family for the end-to-end runs.
FAMILY_BACKBONES = {"vit": "vit_b16", "swin": "swin_b", "convnext": "convnext_b", "mixer": "mixer_b16"}


def tiny_spec(name: str) -> BackboneSpec:
    """The registered backbone `name` (its real weight resolution and loading) on a tiny architecture."""
    tiny = f"tiny_{name}"
    if tiny not in BACKBONES:
        BACKBONES.register(tiny, dataclasses.replace(BACKBONES.get(name), name=tiny, build=TINY_BUILDS[name],
                                                     input_size=32))
    return BACKBONES.get(tiny)


def reference_model(name: str, seed: int = 0) -> torch.nn.Module:
    """The model a fixture is written from (MAE: the pretraining encoder, with its final norm and
    class-token pooling)."""
    torch.manual_seed(seed)
    return _vit() if name == "vit_b16_mae" else TINY_BUILDS[name]()


def _sd(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def write_mocov3(model, path: Path) -> None:
    """main_lincls.py save_checkpoint: DDP `module.` keys, the 1000-way probe head, epoch, optimizer."""
    state = {f"module.{k}": v for k, v in _sd(model).items()}
    width = model.num_features
    state["module.head.weight"], state["module.head.bias"] = torch.randn(1000, width), torch.zeros(1000)
    torch.save({"epoch": 90, "arch": "vit_base", "state_dict": state, "best_acc1": torch.tensor(76.7),
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}}, path)


def write_mae(model, path: Path) -> None:
    """mae_pretrain_vit_base.pth: {'model': encoder keys (timm names), final norm, no head}."""
    torch.save({"model": _sd(model)}, path)


def write_swin(model, path: Path, classes: int = 21841) -> None:
    """swin_base_patch4_window7_224_22k.pth: {'model': ...} in microsoft/Swin-Transformer's names:
    patch merging at the end of a stage, persistent relative_position_index and attn_mask buffers,
    a 21841-way `head`."""
    state = {}
    for key, value in _sd(model).items():
        key = re.sub(r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) - 1}.downsample", key)
        state[key] = value
    for name, module in model.named_modules():
        if hasattr(module, "relative_position_index"):
            state[f"{name}.relative_position_index"] = module.relative_position_index.clone()
        if getattr(module, "attn_mask", None) is not None:
            state[f"{name}.attn_mask"] = module.attn_mask.clone()
    state["head.weight"], state["head.bias"] = torch.randn(classes, model.num_features), torch.zeros(classes)
    torch.save({"model": state}, path)


def write_convnext(model, path: Path, classes: int = 21841) -> None:
    """convnext_base_22k_224.pth: {'model': ...} in facebookresearch/ConvNeXt's names
    (downsample_layers, stages.i.j, dwconv, pwconv1/2, gamma, norm, a 21841-way head)."""
    state = {}
    for key, value in _sd(model).items():
        key = key.replace("stem.", "downsample_layers.0.")
        key = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", key)
        key = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", key)
        key = key.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv").replace("head.norm.", "norm.")
        state[key] = value
    state["head.weight"], state["head.bias"] = torch.randn(classes, model.num_features), torch.zeros(classes)
    torch.save({"model": state}, path)


def write_mixer(model, path: Path, classes: int = 21843) -> None:
    """jx_mixer_b16_224_in21k-617b3de2.pth: timm's own key layout, a plain state dict, 21843-way head."""
    state = _sd(model)
    state["head.weight"], state["head.bias"] = torch.randn(classes, model.num_features), torch.zeros(classes)
    torch.save(state, path)


def write_google_vit_npz(model, path, num_classes=21843, seed=0, pre_logits=True):
    """Write `model` in the layout of Google's original ViT-B_16.npz (ImageNet-21k release),
    including its pre_logits and 21,843-way head, as a fixture checkpoint. `pre_logits=False`: the
    AugReg in21k layout (B_16-i21k-300ep-...npz), which has no representation layer."""
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    d = sd["cls_token"].shape[-1]
    heads = model.blocks[0].attn.num_heads
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "pre_logits/kernel": rng.normal(size=(d, d)).astype(np.float32),
        "pre_logits/bias": np.zeros(d, np.float32),
        "head/kernel": rng.normal(size=(d, num_classes)).astype(np.float32),
        "head/bias": np.zeros(num_classes, np.float32),
    }
    if not pre_logits:
        del w["pre_logits/kernel"], w["pre_logits/bias"]
    for i in range(len(model.blocks)):
        p, b = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            part = qkv_w[j * d:(j + 1) * d]  # (d_out, d_in)
            w[p + f"MultiHeadDotProductAttention_1/{name}/kernel"] = part.T.reshape(d, heads, d // heads)
            w[p + f"MultiHeadDotProductAttention_1/{name}/bias"] = qkv_b[j * d:(j + 1) * d].reshape(heads, d // heads)
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = sd[b + "attn.proj.weight"].T.reshape(heads, d // heads, d)
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = sd[b + "attn.proj.bias"]
        for ln, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[p + f"{ln}/scale"] = sd[b + f"{norm}.weight"]
            w[p + f"{ln}/bias"] = sd[b + f"{norm}.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def write_npz(model, path: Path) -> None:
    write_google_vit_npz(model, path)


WRITERS = {"vit_b16": write_npz, "vit_l16": write_npz, "vit_h14": write_npz, "vit_b16_mocov3": write_mocov3,
           "vit_b16_mae": write_mae, "swin_b": write_swin, "convnext_b": write_convnext, "mixer_b16": write_mixer}


def write_fixture(name: str, folder: Path, seed: int = 0) -> tuple:
    """Write the published file of backbone `name` (tiny) into `folder` under its published name;
    returns (path, the reference model)."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference_model(name, seed)
    path = folder / BACKBONES.get(name).weight_file
    WRITERS[name](reference, path)
    return path, reference
