"""Bottleneck adapters as the published VTAB-1k rows trained them.

- `adapter`: the single sequential adapter per block of NOAH's code, the source of the published
  "Adapter" 0.16M row (NOAH `model/supernet_vision_transformer_timm.py` Block.forward, line 365:
  `x = x + self.adapter(self.drop_path(self.mlp(self.norm2(x))))`; `model/module/adapter_super.py`:
  QuickGELU, xavier-uniform weights, N(0, 1e-6) biases, dropout after the activation (line 70),
  output `identity + up(dropout(act(down(x))))`; dropout 0.1 from `supernet_train_prompt.py` line
  209, --drop_rate_adapter, not overridden by `configs/Adapter/VTAB/slurm_train_adapter_vtab.sh`).
  Houlsby et al.'s two-adapters-per-block placement is `--opt placement=houlsby`.
- `adaptformer`: AdaptFormer's parallel adapter (ShoufaChen/AdaptFormer `models/custom_modules.py`
  Block.forward: it reads the residual stream x before norm2 and is added outside drop-path;
  `models/adapter.py` init "lora": kaiming-uniform down, zero up, zero biases; dropout 0.1 on the
  hidden layer; `main_image.py` tuning_config: parallel, no adapter LayerNorm, scale 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..backbones.sites import vit_blocks
from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, freeze, replace_submodule, train_head


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the GELU approximation NOAH's adapter uses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quickgelu": QuickGELU, "gelu": nn.GELU, "relu": nn.ReLU}
Activation = Literal["quickgelu", "gelu", "relu"]


class Bottleneck(nn.Module):
    """scale * up(dropout(act(down(x)))): the adapter branch alone, without a residual."""

    def __init__(self, dim: int, hidden: int, act: str, scale: float, dropout: float, init: str,
                 device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(dim, hidden, device=device, dtype=dtype)
        self.act = ACTIVATIONS[act]()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.Linear(hidden, dim, device=device, dtype=dtype)
        self.scale = scale
        if not self.up.weight.is_meta:
            self.reset(init)

    @torch.no_grad()
    def reset(self, init: str) -> None:
        if init == "xavier":  # NOAH adapter_super.py init_weights
            for linear in (self.down, self.up):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.normal_(linear.bias, std=1e-6)
        elif init == "lora":  # AdaptFormer adapter.py, init_option "lora"
            nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
            for tensor in (self.down.bias, self.up.weight, self.up.bias):
                nn.init.zeros_(tensor)
        elif init == "zero_up":  # the adapted model starts as the backbone (Houlsby's near-identity)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)
        else:
            raise ValueError(f"unknown adapter init {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(self.dropout(self.act(self.down(x))))


class SequentialAdapter(nn.Module):
    """y = inner(x); y + adapter(y)."""

    def __init__(self, inner: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.inner, self.adapter = inner, adapter

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        y = self.inner(x, *args, **kwargs)
        return y + self.adapter(y)


class ParallelAdapterBlock(nn.Module):
    """A timm ViT block with AdaptFormer's parallel adapter on its MLP sub-block:
    x = x + dp1(ls1(attn(norm1(x)))); x = x + dp2(ls2(mlp(norm2(x)))) + adapter(x)."""

    def __init__(self, block: nn.Module, adapter: Bottleneck):
        super().__init__()
        self.block, self.adapter = block, adapter

    def forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        b = self.block
        x = x + b.drop_path1(b.ls1(b.attn(b.norm1(x), attn_mask=attn_mask, is_causal=is_causal)))
        return x + b.drop_path2(b.ls2(b.mlp(b.norm2(x)))) + self.adapter(x)


def _check_bottleneck(method: str, bottleneck: int, dropout: float) -> None:
    if bottleneck < 1:
        raise UserError(f"{method} bottleneck must be at least 1, got {bottleneck}")
    if not 0 <= dropout < 1:
        raise UserError(f"{method} dropout must lie in [0, 1), got {dropout}")


@dataclass(frozen=True)
class AdapterConfig:
    bottleneck: int = doc("hidden width of the bottleneck (NOAH's published row: 8)", default=8)
    placement: Literal["noah", "houlsby"] = doc(
        "noah: one adapter on the drop-pathed MLP output of each block (the published 0.16M row); "
        "houlsby: one after the attention and one after the MLP of each block (Houlsby et al.)", default="noah")
    act: Activation = doc("activation inside the bottleneck (NOAH: quickgelu)", default="quickgelu")
    init: Literal["xavier", "zero_up"] = doc(
        "xavier: NOAH's xavier weights and N(0, 1e-6) biases; zero_up: up-projection zero, so the "
        "adapted model starts as the backbone", default="xavier")
    dropout: float = doc("dropout on the hidden layer during training (NOAH: 0.1)", default=0.1)

    def validate(self) -> None:
        _check_bottleneck("adapter", self.bottleneck, self.dropout)


@dataclass(frozen=True)
class AdaptFormerConfig:
    bottleneck: int = doc("hidden width of the bottleneck (the published VTAB-1k row: 8, 0.16M)", default=8)
    scale: float = doc("scale s of the parallel branch", default=0.1)
    dropout: float = doc("dropout on the hidden layer during training (official: 0.1)", default=0.1)

    def validate(self) -> None:
        _check_bottleneck("adaptformer", self.bottleneck, self.dropout)


def apply_adapter(model: nn.Module, config: AdapterConfig) -> nn.Module:
    blocks = vit_blocks(model)
    freeze(model)
    for name, block in blocks:
        d = block.mlp.fc1.in_features
        factory = dict(device=block.mlp.fc1.weight.device, dtype=block.mlp.fc1.weight.dtype)

        def make() -> Bottleneck:
            return Bottleneck(d, config.bottleneck, config.act, 1.0, config.dropout, config.init, **factory)

        # NOAH applies its adapter after drop-path, so wrap drop_path2 (its input is the MLP's output).
        replace_submodule(model, f"{name}.drop_path2", SequentialAdapter(block.drop_path2, make()))
        if config.placement == "houlsby":
            replace_submodule(model, f"{name}.drop_path1", SequentialAdapter(block.drop_path1, make()))
    train_head(model)
    return model


def apply_adaptformer(model: nn.Module, config: AdaptFormerConfig) -> nn.Module:
    blocks = vit_blocks(model)
    freeze(model)
    for name, block in blocks:
        d = block.mlp.fc1.in_features
        factory = dict(device=block.mlp.fc1.weight.device, dtype=block.mlp.fc1.weight.dtype)
        adapter = Bottleneck(d, config.bottleneck, "relu", config.scale, config.dropout, "lora", **factory)
        replace_submodule(model, name, ParallelAdapterBlock(block, adapter))
    train_head(model)
    return model


METHODS.register("adapter", MethodSpec(
    name="adapter", display="Adapter", config_cls=AdapterConfig, apply=apply_adapter, identity_at_init=False,
    paper="Houlsby et al. 2019 (ICML), as NOAH's code trains it for the published VTAB-1k row",
    summary="sequential bottleneck adapter on each block's MLP output (QuickGELU, xavier, bottleneck 8)"))
METHODS.register("adaptformer", MethodSpec(
    name="adaptformer", display="AdaptFormer", config_cls=AdaptFormerConfig, apply=apply_adaptformer,
    paper="Chen et al. 2022, AdaptFormer (NeurIPS)",
    summary="parallel bottleneck adapter reading each block's residual stream (ReLU, bottleneck 8, scale 0.1)"))
