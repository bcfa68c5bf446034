"""FacT-TT (Jie & Deng 2023): the updates of all ViT weights as one tensor-train factorised
tensor. Every d x d weight slot w (q, k, v, o, and the 4 d x d chunks of fc1 and of fc2) of
block l gets dW = s * U Sigma_{l,w} V^T with U, V (d x r) shared by the whole model and a core
Sigma (r x r) per slot. Linear in the weights, so it merges exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from timm.layers import Mlp
from timm.layers.attention import Attention
from torch import nn

from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, copy_linear, freeze, merge_modules, replace_submodule, train_head

FACTORS_ATTR = "fact_factors"


@dataclass(frozen=True)
class FacTConfig:
    rank: int = doc("rank r of the shared factors U, V and of each r x r core", default=8)
    scale: float = doc("scale s of the update (the paper searches it per task)", default=1.0)
    dropout: float = doc("dropout in the rank-r space during training", default=0.1)

    def validate(self) -> None:
        if self.rank < 1:
            raise UserError(f"fact_tt rank must be at least 1, got {self.rank}")


class FacTFactors(nn.Module):
    """U (d x r, zero so training starts at the backbone) and V (d x r), shared by every slot."""

    def __init__(self, dim: int, rank: int, device=None, dtype=None):
        super().__init__()
        self.u = nn.Parameter(torch.zeros(dim, rank, device=device, dtype=dtype))
        self.v = nn.Parameter(torch.empty(dim, rank, device=device, dtype=dtype))
        if not self.v.is_meta:
            nn.init.xavier_uniform_(self.v)


class FacTLinear(nn.Module):
    """A frozen Linear whose weight is tiled by `out_slots` x `in_slots` blocks of d x d, each with
    its own core: y = base(x) + s * (sum over blocks of U core V^T applied blockwise)."""

    def __init__(self, base: nn.Linear, factors: FacTFactors, dim: int, config: FacTConfig):
        super().__init__()
        if base.in_features % dim or base.out_features % dim:
            raise UserError(f"fact_tt needs layer sizes that are multiples of the width {dim}, got "
                            f"{base.in_features} -> {base.out_features}")
        self.base, self.dim, self.scale = base, dim, config.scale
        self.in_slots, self.out_slots = base.in_features // dim, base.out_features // dim
        object.__setattr__(self, "_factors", factors)  # registered once, on the model
        r = config.rank
        # Cores indexed [out slot, in slot]; only the d x d slots of the original ViT exist: fused
        # qkv has 3 x 1, proj 1 x 1, fc1 4 x 1, fc2 1 x 4.
        self.cores = nn.Parameter(torch.zeros(self.out_slots, self.in_slots, r, r,
                                              device=base.weight.device, dtype=base.weight.dtype))
        if not self.cores.is_meta:
            nn.init.normal_(self.cores, std=0.02)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self._factors.u, self._factors.v
        low = self.dropout(x.reshape(*x.shape[:-1], self.in_slots, self.dim) @ v)  # (..., in, r)
        mixed = torch.einsum("...ir,oisr->...os", low, self.cores)  # (..., out, r)
        delta = (mixed @ u.T).reshape(*x.shape[:-1], -1)  # (..., out * d)
        return self.base(x) + self.scale * delta

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        u, v = self._factors.u.double(), self._factors.v.double()
        blocks = torch.einsum("ds,oisr,er->oide", u, self.cores.double(), v)  # (out, in, d, d)
        delta = blocks.permute(0, 2, 1, 3).reshape(self.base.out_features, self.base.in_features)
        return copy_linear(self.base, self.base.weight.double() + self.scale * delta)


def fact_sites(model: nn.Module) -> List[str]:
    names = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, Attention):
            names += [f"{prefix}qkv", f"{prefix}proj"]
        elif isinstance(module, Mlp):
            names += [f"{prefix}fc1", f"{prefix}fc2"]
    if not names:
        raise UserError(f"fact_tt found no ViT attention or MLP blocks in {type(model).__name__}")
    return names


def apply_fact_tt(model: nn.Module, config: FacTConfig) -> nn.Module:
    names = fact_sites(model)
    freeze(model)
    first = model.get_submodule(names[0])
    dim = first.in_features
    factors = FacTFactors(dim, config.rank, device=first.weight.device, dtype=first.weight.dtype)
    model.add_module(FACTORS_ATTR, factors)
    for name in names:
        replace_submodule(model, name, FacTLinear(model.get_submodule(name), factors, dim, config))
    train_head(model)
    return model


def merge_fact_tt(model: nn.Module) -> nn.Module:
    merge_modules(model, FacTLinear, "fact_tt")
    delattr(model, FACTORS_ATTR)
    return model


METHODS.register("fact_tt", MethodSpec(
    name="fact_tt", config_cls=FacTConfig, apply=apply_fact_tt, merge=merge_fact_tt,
    paper="Jie & Deng 2023, FacT: Factor-Tuning (AAAI), tensor-train form",
    summary="all ViT weight updates as one tensor-train factorised tensor; mergeable"))
