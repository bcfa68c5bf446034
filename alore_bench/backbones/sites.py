"""Where methods attach: the frozen linear layers that feed each token-mixing and channel-mixing
sub-block, found by module type (never by substrings of parameter names)."""

from __future__ import annotations

from typing import List, Literal, Tuple

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
