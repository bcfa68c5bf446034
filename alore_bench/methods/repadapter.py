"""RepAdapter: a linear, sequential adapter with a grouped up-projection in front of the attention
and MLP blocks, merged into the following linear layer after training (Luo et al. 2023).

Defaults as luogen1996/RepAdapter `repadapter.py` trains the published rows (class RepAdapter,
lines 147-172): conv_A (d -> r, bias) xavier-uniform with zero bias, conv_B (r -> d, groups 2,
bias) zero, dropout 0.1 between them, x + s * B(dropout(A x)); placed on the inputs of attention
and MLP (forward_vit_block_adapter, lines 21-24). With biases the budget on ViT-B/16 is 0.24M; the
paper's 0.22M counts the weights only. Per-task scales: the repadapter_paper preset."""

from __future__ import annotations


import torch
from torch import nn

from ..backbones.sites import linear_sites
from ..errors import UserError
from .modules import fold_input_affine, freeze, merge_modules, replace_submodule, train_head
from .specs.repadapter import RepAdapterConfig  # noqa: F401  (importable from here too)


class RepAdapterLinear(nn.Module):
    """base(x + s * up(down(x))) with a grouped `up`; all linear, so it merges into base."""

    def __init__(self, base: nn.Linear, config: RepAdapterConfig):
        super().__init__()
        d, r, g = base.in_features, config.bottleneck, config.groups
        if d % g:
            raise UserError(f"repadapter groups={g} must divide the layer width {d}")
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.base, self.groups, self.scale = base, g, config.scale
        self.down = nn.Linear(d, r, bias=config.bias, **factory)
        # Grouped up-projection: group k maps r/g hidden units to d/g outputs; zero, so the
        # adapted model starts equal to the backbone.
        self.up_weight = nn.Parameter(torch.zeros(g, d // g, r // g, **factory))
        self.up_bias = nn.Parameter(torch.zeros(d, **factory)) if config.bias else None
        if not self.down.weight.is_meta:
            nn.init.xavier_uniform_(self.down.weight)
            if self.down.bias is not None:
                nn.init.zeros_(self.down.bias)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.dropout_on_input = config.dropout_on == "input"

    def adapter(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.down(self.dropout(x)) if self.dropout_on_input else self.dropout(self.down(x))
        grouped = hidden.reshape(*hidden.shape[:-1], self.groups, -1)
        out = torch.einsum("...gr,gdr->...gd", grouped, self.up_weight).reshape(*hidden.shape[:-1], -1)
        return out if self.up_bias is None else out + self.up_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x + self.scale * self.adapter(x))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        # x' = (I + s U D) x + s (U b_d + b_u); y = W x' + b.
        up = torch.block_diag(*self.up_weight.double())  # (d, r)
        down_w = self.down.weight.double()
        d = self.base.in_features
        matrix = torch.eye(d, dtype=torch.float64, device=up.device) + self.scale * up @ down_w
        offset = torch.zeros(d, dtype=torch.float64, device=up.device)
        if self.down.bias is not None:
            offset = offset + self.scale * up @ self.down.bias.double()
        if self.up_bias is not None:
            offset = offset + self.scale * self.up_bias.double()
        return fold_input_affine(self.base, matrix, offset)


def apply_repadapter(model: nn.Module, config: RepAdapterConfig) -> nn.Module:
    sites = linear_sites(model, config.sites)
    freeze(model)
    for name, linear, _kind in sites:
        replace_submodule(model, name, RepAdapterLinear(linear, config))
    train_head(model)
    return model


def merge_repadapter(model: nn.Module) -> nn.Module:
    return merge_modules(model, RepAdapterLinear, "repadapter")


