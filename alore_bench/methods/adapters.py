"""Bottleneck adapters as the published VTAB-1k rows trained them.

- `adapter`: the single sequential adapter per block of NOAH's code, the source of the published
  "Adapter" 0.16M row (NOAH `model/supernet_vision_transformer_timm.py` Block.forward, line 365:
  `x = x + self.adapter(self.drop_path(self.mlp(self.norm2(x))))`; `model/module/adapter_super.py`:
  QuickGELU, dropout after the activation (line 70), output `identity + up(dropout(act(down(x))))`; dropout 0.1 from `supernet_train_prompt.py` line
  209, --drop_rate_adapter, not overridden by `configs/Adapter/VTAB/slurm_train_adapter_vtab.sh`).
  Its weights start trunc-normal with std 0.02 and zero biases: the module's own init_weights
  (xavier-uniform, N(0, 1e-6) biases; `--opt init=xavier`) is overwritten when
  `VisionTransformer.__init__` calls `init_weights`, whose `self.apply(_init_vit_weights)` resets
  every nn.Linear (supernet_vision_transformer_timm.py, `_init_vit_weights`, non-jax branch).
  Houlsby et al.'s two-adapters-per-block placement is `--opt placement=houlsby`.
- `adaptformer`: AdaptFormer's parallel adapter (ShoufaChen/AdaptFormer `models/custom_modules.py`
  Block.forward: it reads the residual stream x before norm2 and is added outside drop-path;
  `models/adapter.py` init "lora": kaiming-uniform down, zero up, zero biases; dropout 0.1 on the
  hidden layer; `main_image.py` tuning_config: parallel, no adapter LayerNorm, scale 0.1).
"""

from __future__ import annotations

import math

from timm.layers import trunc_normal_
import torch
from torch import nn

from ..backbones.sites import HookedBlock, has_token_branch, residual_blocks
from ..errors import UserError, param
from .modules import freeze, replace_submodule, train_head
from .specs.adapters import AdapterConfig, AdaptFormerConfig  # noqa: F401  (importable from here too)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the GELU approximation NOAH's adapter uses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"quickgelu": QuickGELU, "gelu": nn.GELU, "relu": nn.ReLU}


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
        if init == "noah":  # NOAH _init_vit_weights over every nn.Linear
            for linear in (self.down, self.up):
                trunc_normal_(linear.weight, std=0.02)
                nn.init.zeros_(linear.bias)
        elif init == "xavier":  # NOAH adapter_super.py init_weights
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
    """A branch hook: the branch's output y becomes y + adapter(y) (an adapter after the sub-block)."""

    def __init__(self, adapter: Bottleneck):
        super().__init__()
        self.adapter = adapter

    def forward(self, stream: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return branch + self.adapter(branch)


class ParallelAdapter(nn.Module):
    """A branch hook: adapter(x) of the stream the sub-block reads is added beside the branch,
    outside its drop-path (AdaptFormer)."""

    def __init__(self, adapter: Bottleneck):
        super().__init__()
        self.adapter = adapter

    def forward(self, stream: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        return branch + self.adapter(stream)


def apply_adapter(model: nn.Module, config: AdapterConfig) -> nn.Module:
    blocks = residual_blocks(model)
    if config.placement == "houlsby" and not has_token_branch(blocks[0][2]):
        raise UserError(f"adapter placement=houlsby needs a token-mixing sub-block; {blocks[0][2]} blocks have "
                        f"one branch: use {param('options', 'placement=noah')}")
    freeze(model)
    for name, block, family, d in blocks:
        factory = dict(device=block_device(block), dtype=block_dtype(block))

        def make() -> SequentialAdapter:
            return SequentialAdapter(Bottleneck(d, config.bottleneck, config.act, 1.0, config.dropout, config.init,
                                                **factory))

        # NOAH applies its adapter after drop-path: the hook sees the drop-pathed MLP output.
        channel = make()
        token = make() if config.placement == "houlsby" else None
        replace_submodule(model, name, HookedBlock(block, family, token=token, channel=channel))
    train_head(model)
    return model


def apply_adaptformer(model: nn.Module, config: AdaptFormerConfig) -> nn.Module:
    blocks = residual_blocks(model)
    freeze(model)
    for name, block, family, d in blocks:
        factory = dict(device=block_device(block), dtype=block_dtype(block))
        adapter = Bottleneck(d, config.bottleneck, "relu", config.scale, config.dropout, "lora", **factory)
        replace_submodule(model, name, HookedBlock(block, family, channel=ParallelAdapter(adapter)))
    train_head(model)
    return model


def block_device(block: nn.Module) -> torch.device:
    return next(block.parameters()).device


def block_dtype(block: nn.Module) -> torch.dtype:
    return next(block.parameters()).dtype


