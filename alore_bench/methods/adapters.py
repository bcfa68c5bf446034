"""Bottleneck adapters: Houlsby (sequential after the MLP) and AdaptFormer (parallel to the MLP)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..backbones.sites import mlp_blocks
from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, freeze, replace_submodule, train_head


class Bottleneck(nn.Module):
    """scale * up(act(down(x))); `up` starts at zero so the adapted model equals the backbone."""

    def __init__(self, dim: int, hidden: int, act: str, scale: float, dropout: float,
                 device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(dim, hidden, device=device, dtype=dtype)
        self.act = nn.GELU() if act == "gelu" else nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.Linear(hidden, dim, device=device, dtype=dtype)
        self.scale = scale
        if not self.up.weight.is_meta:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.dropout(self.act(self.down(x))))


class SequentialAdapter(nn.Module):
    """y = inner(x); y + adapter(y)."""

    def __init__(self, inner: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.inner, self.adapter = inner, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y + self.adapter(y)


class ParallelAdapter(nn.Module):
    """inner(x) + adapter(x)."""

    def __init__(self, inner: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.inner, self.adapter = inner, adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.adapter(x)


@dataclass(frozen=True)
class AdapterConfig:
    bottleneck: int = doc("hidden width of the bottleneck", default=8)
    dropout: float = doc("dropout inside the adapter during training", default=0.0)

    def validate(self) -> None:
        if self.bottleneck < 1:
            raise UserError(f"adapter bottleneck must be at least 1, got {self.bottleneck}")


@dataclass(frozen=True)
class AdaptFormerConfig:
    bottleneck: int = doc("hidden width of the bottleneck", default=64)
    scale: float = doc("scale s of the parallel branch", default=0.1)
    dropout: float = doc("dropout inside the adapter during training", default=0.0)

    def validate(self) -> None:
        if self.bottleneck < 1:
            raise UserError(f"adaptformer bottleneck must be at least 1, got {self.bottleneck}")


def _wrap_mlps(model: nn.Module, make) -> nn.Module:
    blocks = mlp_blocks(model)
    freeze(model)
    for name, mlp in blocks:
        reference = mlp.fc1.weight
        replace_submodule(model, name, make(mlp, mlp.fc1.in_features, dict(device=reference.device, dtype=reference.dtype)))
    train_head(model)
    return model


def apply_adapter(model: nn.Module, config: AdapterConfig) -> nn.Module:
    return _wrap_mlps(model, lambda mlp, d, f: SequentialAdapter(
        mlp, Bottleneck(d, config.bottleneck, "gelu", 1.0, config.dropout, **f)))


def apply_adaptformer(model: nn.Module, config: AdaptFormerConfig) -> nn.Module:
    return _wrap_mlps(model, lambda mlp, d, f: ParallelAdapter(
        mlp, Bottleneck(d, config.bottleneck, "relu", config.scale, config.dropout, **f)))


METHODS.register("adapter", MethodSpec(
    name="adapter", config_cls=AdapterConfig, apply=apply_adapter,
    paper="Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP (ICML)",
    summary="sequential bottleneck adapter after each MLP (GELU, bottleneck 8)"))
METHODS.register("adaptformer", MethodSpec(
    name="adaptformer", config_cls=AdaptFormerConfig, apply=apply_adaptformer,
    paper="Chen et al. 2022, AdaptFormer (NeurIPS)",
    summary="parallel bottleneck adapter beside each MLP (ReLU, bottleneck 64, scale 0.1)"))
