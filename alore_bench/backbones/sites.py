"""Where methods attach, in every backbone family: the frozen linear layers that feed each
token-mixing and channel-mixing sub-block, and each block's residual branches, all found by module
type (never by substrings of parameter names).

Family   token mixing (site kind "attn")          channel mixing (site kind "mlp")
ViT      Attention.qkv (fused q, k, v)            Mlp.fc1
Swin     WindowAttention.qkv                      Mlp.fc1
Mixer    MixerBlock.mlp_tokens.fc1 (over tokens)  MixerBlock.mlp_channels.fc1
ConvNeXt none (a depthwise convolution)           ConvNeXtBlock.mlp.fc1 (pwconv1 in the official code)
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch
from timm.layers import Mlp
from timm.layers.attention import Attention
from timm.models.convnext import ConvNeXtBlock
from timm.models.mlp_mixer import MixerBlock
from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention
from torch import nn

from ..errors import UserError, param

from .site_names import SiteChoice, SiteKind  # noqa: F401  (importable from here too)

# Attention modules with a fused qkv nn.Linear and an output `proj`.
ATTENTION_TYPES = (Attention, WindowAttention)


def family_of(model: nn.Module) -> str:
    """The backbone family by its block types: vit, swin, mixer, convnext (or the class name)."""
    for kind, family in ((SwinTransformerBlock, "swin"), (MixerBlock, "mixer"), (ConvNeXtBlock, "convnext"),
                         (Attention, "vit")):
        if any(isinstance(m, kind) for m in model.modules()):
            return family
    return type(model).__name__


def token_mlps(model: nn.Module) -> set:
    """ids of the MLPs that mix tokens (MLP-Mixer's mlp_tokens), which are not channel MLPs."""
    return {id(m.mlp_tokens) for m in model.modules() if isinstance(m, MixerBlock)}


def linear_sites(model: nn.Module, choice: SiteChoice) -> List[Tuple[str, nn.Linear, SiteKind]]:
    """(qualified name, linear layer, kind) for every adaptation site of `model`.

    attn: the first linear layer of each token-mixing sub-block (ViT / Swin: the fused qkv, whose
    input is norm1's output; Mixer: the token MLP's fc1); mlp: the first linear layer of each
    channel MLP (its input is norm2's output; ConvNeXt: pwconv1, after the block's norm).
    """
    wanted = {"both": ("attn", "mlp"), "attn": ("attn",), "mlp": ("mlp",)}[choice]
    tokens = token_mlps(model)
    sites: List[Tuple[str, nn.Linear, SiteKind]] = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, ATTENTION_TYPES) and isinstance(module.qkv, nn.Linear):
            sites.append((f"{prefix}qkv", module.qkv, "attn"))
        elif isinstance(module, Mlp) and isinstance(module.fc1, nn.Linear):
            sites.append((f"{prefix}fc1", module.fc1, "attn" if id(module) in tokens else "mlp"))
    chosen = [site for site in sites if site[2] in wanted]
    if not chosen:
        family = family_of(model)
        if sites:  # the family has sites, just not of the chosen kind (ConvNeXt has no token-mixing linear)
            have = sorted({kind for _n, _l, kind in sites})
            raise UserError(f"{family} has no {choice} adaptation sites (its token mixing is not a linear layer): "
                            f"use {param('options', 'sites=' + '/'.join(have))}")
        raise UserError(f"no adaptation sites found in {type(model).__name__} ({family}): this backbone family has "
                        "no attention qkv / MLP fc1 linear layers the method can target")
    return chosen


# A branch hook sees the residual stream a sub-block reads (channels last) and the sub-block's
# drop-pathed output, and returns what is added to the stream instead of that output.
BranchHook = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class PlainBranch(nn.Module):
    """The hook that changes nothing."""

    def forward(self, stream: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return branch


def _vit_forward(b: nn.Module, x: torch.Tensor, token: BranchHook, channel: BranchHook,
                 attn_mask=None, is_causal: bool = False) -> torch.Tensor:
    x = x + token(x, b.drop_path1(b.ls1(b.attn(b.norm1(x), attn_mask=attn_mask, is_causal=is_causal))))
    return x + channel(x, b.drop_path2(b.ls2(b.mlp(b.norm2(x)))))


def _swin_forward(b: nn.Module, x: torch.Tensor, token: BranchHook, channel: BranchHook) -> torch.Tensor:
    B, H, W, C = x.shape
    x = x + token(x, b.drop_path1(b._attn(b.norm1(x))))
    x = x.reshape(B, -1, C)
    x = x + channel(x, b.drop_path2(b.mlp(b.norm2(x))))
    return x.reshape(B, H, W, C)


def _mixer_forward(b: nn.Module, x: torch.Tensor, token: BranchHook, channel: BranchHook) -> torch.Tensor:
    x = x + token(x, b.drop_path(b.mlp_tokens(b.norm1(x).transpose(1, 2)).transpose(1, 2)))
    return x + channel(x, b.drop_path(b.mlp_channels(b.norm2(x))))


def _convnext_forward(b: nn.Module, x: torch.Tensor, token: BranchHook, channel: BranchHook) -> torch.Tensor:
    # One residual branch (depthwise conv, norm, MLP); the hook works channels-last.
    shortcut = x
    y = b.mlp(b.norm(b.conv_dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
    if b.gamma is not None:
        y = y.mul(b.gamma.reshape(1, -1, 1, 1))
    y = channel(shortcut.permute(0, 2, 3, 1), b.drop_path(y).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return y + b.shortcut(shortcut)


def _is_vit_block(module: nn.Module) -> bool:
    parts = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")
    return all(isinstance(getattr(module, p, None), nn.Module) for p in parts) and isinstance(module.mlp, Mlp)


BLOCK_FORWARDS: Dict[str, Tuple[Callable[[nn.Module], bool], Callable[..., torch.Tensor], bool]] = {
    # family: (is this a block of it, forward with hooks, has a token-mixing branch)
    "vit": (_is_vit_block, _vit_forward, True),
    "swin": (lambda m: isinstance(m, SwinTransformerBlock), _swin_forward, True),
    "mixer": (lambda m: isinstance(m, MixerBlock), _mixer_forward, True),
    "convnext": (lambda m: isinstance(m, ConvNeXtBlock) and not m.use_conv_mlp, _convnext_forward, False),
}


class HookedBlock(nn.Module):
    """A residual block of any known family, computing exactly its own forward, with hooks on its
    token-mixing and channel-mixing branches (adapters attach there)."""

    def __init__(self, block: nn.Module, family: str, token: nn.Module | None = None, channel: nn.Module | None = None):
        super().__init__()
        self.block, self.family = block, family
        self.token_hook = token if token is not None else PlainBranch()
        self.channel_hook = channel if channel is not None else PlainBranch()

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return BLOCK_FORWARDS[self.family][1](self.block, x, self.token_hook, self.channel_hook, **kwargs)


def residual_blocks(model: nn.Module) -> List[Tuple[str, nn.Module, str, int]]:
    """(qualified name, block, family, channel width) for every residual block of a known family."""
    found = []
    for name, module in model.named_modules():
        for family, (is_block, _forward, _token) in BLOCK_FORWARDS.items():
            if is_block(module):
                mlp = module.mlp_channels if family == "mixer" else module.mlp
                found.append((name, module, family, mlp.fc1.in_features))
                break
    if not found:
        raise UserError(f"no residual blocks of a known family (ViT, Swin, Mixer, ConvNeXt) found in "
                        f"{type(model).__name__}: this method needs one")
    return found


def has_token_branch(family: str) -> bool:
    return BLOCK_FORWARDS[family][2]


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
        if isinstance(module, ATTENTION_TYPES) and isinstance(module.qkv, nn.Linear):
            module.qkv = SplitQKV(module.qkv)
            names.append(f"{name}.qkv" if name else "qkv")
    if not names:
        raise UserError(f"no attention blocks with a fused qkv projection found in {type(model).__name__}")
    return names


def fuse_qkv(model: nn.Module) -> nn.Module:
    """Undo split_qkv (after a method merged itself into q, k and v)."""
    for module in model.modules():
        if isinstance(module, ATTENTION_TYPES) and isinstance(module.qkv, SplitQKV):
            module.qkv = module.qkv.fused()
    return model
