"""Where methods attach: the frozen linear layers that feed each token-mixing and channel-mixing
sub-block, found by module type (never by substrings of parameter names)."""

from __future__ import annotations

from typing import List, Literal, Tuple

import torch
from timm.layers import Mlp
from timm.layers.attention import Attention
from torch import nn

from ..errors import UserError

SiteKind = Literal["attn", "mlp"]
SiteChoice = Literal["both", "attn", "mlp"]


def linear_sites(model: nn.Module, choice: SiteChoice) -> List[Tuple[str, nn.Linear, SiteKind]]:
    """(qualified name, linear layer, kind) for every adaptation site of `model`.

    attn: the fused qkv projection of each attention block (its input is norm1's output);
    mlp: the first linear layer of each MLP block (its input is norm2's output).
    """
    wanted = {"both": ("attn", "mlp"), "attn": ("attn",), "mlp": ("mlp",)}[choice]
    sites: List[Tuple[str, nn.Linear, SiteKind]] = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if "attn" in wanted and isinstance(module, Attention) and isinstance(module.qkv, nn.Linear):
            sites.append((f"{prefix}qkv", module.qkv, "attn"))
        if "mlp" in wanted and isinstance(module, Mlp) and isinstance(module.fc1, nn.Linear):
            sites.append((f"{prefix}fc1", module.fc1, "mlp"))
    if not sites:
        raise UserError(
            f"no adaptation sites ({choice}) found in {type(model).__name__}: "
            "this backbone family has no attention qkv / MLP fc1 linear layers the method can target"
        )
    return sites


def mlp_blocks(model: nn.Module) -> List[Tuple[str, Mlp]]:
    """(qualified name, Mlp) for every channel-mixing MLP of the model (by type)."""
    found = [(name, module) for name, module in model.named_modules() if isinstance(module, Mlp)]
    if not found:
        raise UserError(f"no MLP blocks found in {type(model).__name__}: this method needs timm Mlp blocks")
    return found


def vit_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(qualified name, block) for every pre-norm transformer block of timm's ViT layout (norm1,
    attn, ls1, drop_path1, norm2, mlp, ls2, drop_path2), found by those parts, not by name."""
    parts = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")
    found = [(name, module) for name, module in model.named_modules()
             if all(isinstance(getattr(module, p, None), nn.Module) for p in parts) and isinstance(module.mlp, Mlp)]
    if not found:
        raise UserError(f"no ViT blocks (norm1/attn/norm2/mlp with drop-path) found in {type(model).__name__}: "
                        "this method needs timm's pre-norm transformer blocks")
    return found


class SplitQKV(nn.Module):
    """timm's fused qkv projection as three separate nn.Linear layers `q`, `k`, `v` with the same
    function (outputs concatenated), so that methods can target q, k and v on their own as the
    papers do; `fused()` turns it back into one nn.Linear after merging."""

    def __init__(self, qkv: nn.Linear):
        super().__init__()
        d_out = qkv.out_features // 3
        has_bias = qkv.bias is not None
        for index, part in enumerate(("q", "k", "v")):
            linear = nn.Linear(qkv.in_features, d_out, bias=has_bias, device=qkv.weight.device, dtype=qkv.weight.dtype)
            rows = slice(index * d_out, (index + 1) * d_out)
            linear.weight = nn.Parameter(qkv.weight.detach()[rows].clone(), requires_grad=qkv.weight.requires_grad)
            if has_bias:
                linear.bias = nn.Parameter(qkv.bias.detach()[rows].clone(), requires_grad=qkv.bias.requires_grad)
            setattr(self, part, linear)
        self.in_features, self.out_features = qkv.in_features, qkv.out_features

    def forward(self, x):
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    def fused(self) -> nn.Linear:
        parts = [getattr(self, p) for p in ("q", "k", "v")]
        for part in parts:
            if not isinstance(part, nn.Linear):
                raise ValueError(f"SplitQKV.fused: {type(part).__name__} is not a plain nn.Linear; merge the method first")
        fused = nn.Linear(self.in_features, self.out_features, bias=parts[0].bias is not None,
                          device=parts[0].weight.device, dtype=parts[0].weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([p.weight for p in parts]))
            if fused.bias is not None:
                fused.bias.copy_(torch.cat([p.bias for p in parts]))
        fused.requires_grad_(parts[0].weight.requires_grad)
        return fused


def split_qkv(model: nn.Module) -> List[str]:
    """Replace every attention block's fused qkv by a SplitQKV; returns the new modules' names."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, Attention) and isinstance(module.qkv, nn.Linear):
            module.qkv = SplitQKV(module.qkv)
            names.append(f"{name}.qkv" if name else "qkv")
    if not names:
        raise UserError(f"no attention blocks with a fused qkv projection found in {type(model).__name__}")
    return names


def fuse_qkv(model: nn.Module) -> nn.Module:
    """Undo split_qkv (after a method merged itself into q, k and v)."""
    for module in model.modules():
        if isinstance(module, Attention) and isinstance(module.qkv, SplitQKV):
            module.qkv = module.qkv.fused()
    return model
