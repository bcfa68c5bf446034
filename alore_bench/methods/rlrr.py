"""RLRR, Residual Low-Rank Rescaling (Dong et al. 2024, CVPR), as zstarN70/RLRR trains it.

Every linear layer of the blocks (q, k, v, the attention output, fc1, fc2) keeps its frozen weight
as a residual and adds a rank-1 rescaling of it, W' = W + W * (s_out s_in^T), b' = b + shift
(`models/networks.py` RLRRLinear, lines 37-72: s_in (1 x in) and s_out (out x 1) kaiming-uniform,
shift zero); the layer norms, the patch embedding and the final norm are followed by SSF's scale
and shift (lines 138-145, 169-175, 222-229, 253-263: N(1, 0.02) and N(0, 0.02)). q, k and v are
separate layers there, so timm's fused qkv is split for it and fused again when merging. Every
part is a re-parameterisation of a frozen layer, so it merges exactly.

Its "drop-path" is element-wise dropout: RLRRBlock's `drop_path1` and `drop_path2` are
`nn.Dropout(p=drop_path)` on each residual branch (networks.py lines 166-167), at rates
`torch.linspace(0, drop_path, num_blocks)` (line 217), timm's stochastic-depth rule. So the recipe's
drop_path rate builds timm's DropPath modules at those rates, and apply replaces each by an
nn.Dropout of the same rate (`--opt residual_drop=drop_path` keeps timm's per-sample DropPath).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from timm.layers.attention import Attention
from torch import nn

from ..backbones.sites import family_of, fuse_qkv, split_qkv
from ..errors import UserError
from .modules import copy_linear, freeze, merge_modules, replace_submodule, train_head
from .specs.rlrr import RLRRConfig  # noqa: F401  (importable from here too)
from .ssf import ScaleShift


class RLRRLinear(nn.Module):
    """F.linear(x, W + W * (s_out s_in^T), b + shift) over a frozen nn.Linear."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.base = base
        self.scale_in = nn.Parameter(torch.empty(1, base.in_features, **factory))
        self.scale_out = nn.Parameter(torch.empty(base.out_features, 1, **factory))
        self.shift = nn.Parameter(torch.zeros(base.out_features, **factory))
        if not self.scale_in.is_meta:
            nn.init.kaiming_uniform_(self.scale_in)  # fan-in of a (1, in) tensor: in
            nn.init.kaiming_uniform_(self.scale_out)  # fan-in of an (out, 1) tensor: 1

    def weight_and_bias(self):
        weight = self.base.weight + self.base.weight * (self.scale_out * self.scale_in)
        bias = self.shift if self.base.bias is None else self.base.bias + self.shift
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, *self.weight_and_bias())

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        weight, bias = self.weight_and_bias()
        merged = copy_linear(self.base, weight)
        if merged.bias is None:
            merged.bias = nn.Parameter(torch.zeros_like(bias), requires_grad=False)
        merged.bias.copy_(bias)
        return merged


def rlrr_targets(model: nn.Module):
    """(name, module, kind): linears of attention and MLP blocks, norms, the patch projection."""
    head_ids = {id(m) for m in model.get_classifier().modules()}
    linears, norms = [], []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, Attention):
            linears += [f"{prefix}qkv.{p}" for p in ("q", "k", "v")] + [f"{prefix}proj"]
        elif isinstance(module, Mlp):
            linears += [f"{prefix}fc1", f"{prefix}fc2"]
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine and id(module) not in head_ids:
            norms.append((name, module.normalized_shape[0], -1))
        elif isinstance(module, nn.Conv2d) and name.endswith("patch_embed.proj"):
            norms.append((name, module.out_channels, 1))
    return linears, norms


def apply_rlrr(model: nn.Module, config: RLRRConfig) -> nn.Module:
    family = family_of(model)
    if family != "vit":  # its targets and per-block residual scaling follow ViT's blocks only
        raise UserError(f"rlrr is implemented for ViT backbones (as its official code); {family} is not one")
    linears, scale_shifts = rlrr_targets(model)
    if not linears:
        raise UserError(f"rlrr found no ViT attention or MLP blocks in {type(model).__name__}")
    split_qkv(model)
    freeze(model)
    if config.residual_drop == "dropout":
        residual_dropout(model)
    for name in linears:
        replace_submodule(model, name, RLRRLinear(model.get_submodule(name)))
    for name, channels, channel_dim in scale_shifts:
        replace_submodule(model, name, ScaleShift(model.get_submodule(name), channels, channel_dim, config.ssf_init_std))
    train_head(model)
    return model


def residual_dropout(model: nn.Module) -> None:
    """Every timm DropPath (per-sample stochastic depth) becomes element-wise nn.Dropout of its rate."""
    names = [name for name, module in model.named_modules() if isinstance(module, DropPath)]
    for name in names:
        replace_submodule(model, name, nn.Dropout(p=model.get_submodule(name).drop_prob))


def merge_rlrr(model: nn.Module) -> nn.Module:
    merge_modules(model, RLRRLinear, "rlrr")
    merge_modules(model, ScaleShift, "rlrr")
    return fuse_qkv(model)


