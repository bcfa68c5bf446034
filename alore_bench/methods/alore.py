"""ALoRE: low-rank experts aggregated in a Kronecker-product space (Du et al. 2024).

One site adapts the input of a frozen linear layer y = W x + b:

    dW = sum_i S_i kron (D_i @ U_i),   x' = x + s * dW x,   y = W x' + b

S_i (n x n) are the experts' multiplication rules, shared by every site by default; D_i (m x r)
and U_i (r x m), m = d / n, are expert i's low-rank factors, per site. Because the adapter is
linear and sits in front of W, it merges exactly: W <- W (I + s dW).
See ../shared/reference/alore.md and the README for what is reconstructed and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import nn

from ..backbones.sites import SiteChoice, linear_sites
from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, copy_linear, freeze, merge_modules, replace_submodule, train_head

RULES_ATTR = "alore_rules"


@dataclass(frozen=True)
class ALoReConfig:
    experts: int = doc("number of low-rank experts n; must divide the token width d", default=4)
    rank: int = doc("rank r of each expert's factors D_i (m x r) and U_i (r x m)", default=4)
    scale: float = doc("scale s of the adapter path x + s * dW x (a per-task hyper-parameter)", default=1.0)
    sites: SiteChoice = doc("which linear inputs to adapt: attn (qkv), mlp (fc1) or both", default="both")
    rules: Literal["shared", "per_site", "fixed"] = doc(
        "expert rules S_i: one n x n x n set shared by all sites, one per site, or fixed to identity "
        "(with experts=1 this is the single-branch sequential adapter)",
        default="shared",
    )
    rule_noise: float = doc("std of the noise added to the identity initialisation of learned rules", default=0.02)
    dropout: float = doc("dropout on the adapter path during training", default=0.0)

    def validate(self) -> None:
        if self.experts < 1 or self.rank < 1:
            raise UserError(f"ALoRE experts and rank must be at least 1, got experts={self.experts}, rank={self.rank}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"ALoRE dropout must lie in [0, 1), got {self.dropout}")


class ALoReRules(nn.Module):
    """The experts' multiplication rules S, shape (n, n, n) indexed [expert, out block, in block]."""

    def __init__(self, experts: int, learned: bool, noise: float,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None):
        super().__init__()
        eye = torch.eye(experts, device=device, dtype=dtype).expand(experts, experts, experts).clone()
        if learned:
            self.weight = nn.Parameter(eye)
            if noise > 0 and not self.weight.is_meta:
                with torch.no_grad():
                    self.weight.add_(torch.randn_like(self.weight) * noise)
        else:
            self.register_buffer("weight", eye, persistent=False)


class ALoReLinear(nn.Module):
    """A frozen nn.Linear with an ALoRE adapter on its input; factorised forward, no d x d matrix."""

    def __init__(self, base: nn.Linear, config: ALoReConfig, rules: ALoReRules, own_rules: bool):
        super().__init__()
        d = base.in_features
        n, r = config.experts, config.rank
        if d % n:
            raise UserError(f"ALoRE experts={n} must divide the layer width {d}: pick experts from "
                            f"{', '.join(str(k) for k in range(1, 17) if d % k == 0)}")
        self.base = base
        self.experts, self.rank, self.block = n, r, d // n
        self.scale = config.scale
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        # U_i = 0 so the adapted model starts equal to the backbone; D_i gets a fan-in init.
        self.down = nn.Parameter(torch.zeros(n, r, self.block, **factory))  # U_i: (r, m)
        self.up = nn.Parameter(torch.empty(n, self.block, r, **factory))  # D_i: (m, r)
        if not self.up.is_meta:
            bound = 1.0 / math.sqrt(r)
            nn.init.uniform_(self.up, -bound, bound)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        if own_rules:
            self.rules_module = rules
        else:
            # Shared rules are registered once on the model; keep a plain reference here so that
            # parameters and state_dict hold them exactly once.
            object.__setattr__(self, "_shared_rules", rules)

    @property
    def rules(self) -> torch.Tensor:
        owner = self._modules.get("rules_module") or self.__dict__["_shared_rules"]
        return owner.weight

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """dW @ x without forming dW. Since everything is linear,
        (dW x)[p] = sum_i D_i (sum_q S_i[p, q] U_i x_q): project each block q to every expert's
        rank-r space, mix blocks with the rules there (n^3 r work per token, not n^2 d), then lift
        back with D. Two matmuls of d x (n r) plus a tiny mixing step."""
        n, r, m = self.experts, self.rank, self.block
        blocks = x.reshape(-1, n, m)  # (T, q, m)
        down = self.down.permute(2, 0, 1).reshape(m, n * r)  # U stacked: (m, i r)
        low = (blocks @ down).view(-1, n, n, r)  # (T, q, i, r) = U_i x_q
        mixed = torch.einsum("ipq,tqir->tpir", self.rules.to(low.dtype), low)  # sum_q S_i[p, q] U_i x_q
        up = self.up.permute(0, 2, 1).reshape(n * r, m)  # D stacked: (i r, m)
        out = mixed.reshape(-1, n, n * r) @ up  # (T, p, m) = sum_i D_i (.)
        return out.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x + self.scale * self.delta(self.dropout(x)))

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """The dense d x d matrix dW, in float64 (used only for merging)."""
        rules = self.rules.double()
        experts = torch.bmm(self.up.double(), self.down.double())  # (n, m, m) = D_i U_i
        return sum(torch.kron(rules[i], experts[i]) for i in range(self.experts))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        weight = self.base.weight.double()
        merged = weight + self.scale * weight @ self.delta_weight()
        return copy_linear(self.base, merged)


def apply_alore(model: nn.Module, config: ALoReConfig) -> nn.Module:
    sites = linear_sites(model, config.sites)
    freeze(model)
    reference = sites[0][1].weight
    factory = dict(device=reference.device, dtype=reference.dtype)
    shared = None
    if config.rules == "shared":
        shared = ALoReRules(config.experts, learned=True, noise=config.rule_noise, **factory)
        model.add_module(RULES_ATTR, shared)
    for name, linear, _kind in sites:
        if config.rules == "shared":
            site = ALoReLinear(linear, config, shared, own_rules=False)
        else:
            rules = ALoReRules(config.experts, learned=config.rules == "per_site", noise=config.rule_noise, **factory)
            site = ALoReLinear(linear, config, rules, own_rules=True)
        replace_submodule(model, name, site)
    train_head(model)
    return model


def merge_alore(model: nn.Module) -> nn.Module:
    merge_modules(model, ALoReLinear, "alore")
    if hasattr(model, RULES_ATTR):
        delattr(model, RULES_ATTR)
    return model


METHODS.register(
    "alore",
    MethodSpec(
        name="alore",
        config_cls=ALoReConfig,
        apply=apply_alore,
        merge=merge_alore,
        paper="Du et al. 2024, ALoRE (arXiv 2412.08341)",
        summary="low-rank experts aggregated by Kronecker products, sequential and mergeable",
    ),
)
