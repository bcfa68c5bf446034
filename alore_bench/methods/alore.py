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
from typing import Optional

import torch
from torch import nn

from ..backbones.sites import linear_sites
from ..errors import UserError
from .modules import copy_linear, freeze, merge_modules, replace_submodule, train_head
from .specs.alore import ALoReConfig  # noqa: F401  (importable from here too)

RULES_ATTR = "alore_rules"
# A site recomputes its expert product in the backward (RecomputedSite) when its input is at least
# this big: below it the memory saved is negligible and the recompute's extra small ops cost time
# (demo_vit's 1 MB sites trained 1.3x slower with it). A ViT-B/16 site holds 39 MB at batch 64, and
# 2.4 MB in bf16 at `bench`'s batch of 8, so every ViT-B/16 run and measurement recomputes. Both
# paths give the same gradients, bit for bit (tests/unit/methods/test_alore.py).
RECOMPUTE_MIN_BYTES = 2 * 2 ** 20


class ALoReRules(nn.Module):
    """The experts' multiplication rules S, shape (n, n, n) indexed [expert, out block, in block]."""

    def __init__(self, experts: int, learned: bool, noise: float,
                 device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None, init: str = "identity"):
        super().__init__()
        eye = torch.eye(experts, device=device, dtype=dtype).expand(experts, experts, experts).clone()
        if learned:
            self.weight = nn.Parameter(eye)
            if not self.weight.is_meta:
                with torch.no_grad():
                    if init == "random":
                        bound = 1.0 / math.sqrt(experts)
                        self.weight.uniform_(-bound, bound)
                    elif noise > 0:
                        self.weight.add_(torch.randn_like(self.weight) * noise)
        else:
            self.register_buffer("weight", eye, persistent=False)


class ALoReLinear(nn.Module):
    """A frozen nn.Linear with an ALoRE adapter; factorised forward, no dense dW. Sequential (the
    paper's): on the input, blocks of m = d_in / n on both sides of dW. Parallel: dW shaped like W,
    blocks of d_in / n in and d_out / n out."""

    def __init__(self, base: nn.Linear, config: ALoReConfig, rules: ALoReRules, own_rules: bool):
        super().__init__()
        d = base.in_features
        n, r = config.experts, config.rank
        self.parallel = config.placement == "parallel"
        d_out = base.out_features if self.parallel else d
        for width in (d, d_out):
            if width % n:
                raise UserError(f"ALoRE experts={n} must divide the layer width {width}: pick experts from "
                                f"{', '.join(str(k) for k in range(1, 17) if width % k == 0)}")
        self.base = base
        self.experts, self.rank, self.block, self.out_block = n, r, d // n, d_out // n
        self.scale = config.scale
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        # One factor starts at zero so the adapted model starts equal to the backbone (U_i by
        # default); the other gets a fan-in init.
        self.down = nn.Parameter(torch.zeros(n, r, self.block, **factory))  # U_i: (r, m)
        self.up = nn.Parameter(torch.zeros(n, self.out_block, r, **factory))  # D_i: (m_out, r)
        if not self.up.is_meta:
            if config.zero_factor == "down":
                bound = 1.0 / math.sqrt(r)
                nn.init.uniform_(self.up, -bound, bound)
            else:
                bound = 1.0 / math.sqrt(self.block)
                nn.init.uniform_(self.down, -bound, bound)
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

    def dense_is_cheaper(self) -> bool:
        """Per token the factorised product costs n^2 r (m + n + m_out) multiply-adds and the dense one
        n^2 m m_out (forming dW once per step is negligible). Many experts on narrow blocks (PEViT's
        32 on a 64-wide ViT: m = 2) make the dense one cheaper; ALoRE's 4 experts never do at ViT
        widths (m >= 16)."""
        m, m_out, n, r = self.block, self.out_block, self.experts, self.rank
        return m * m_out < r * (m + n + m_out)

    def dense_delta(self, rules: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dW in the compute dtype, (n m_out, n m): dW[(p, a), (q, b)] = sum_i S_i[p, q] (D_i U_i)[a, b]."""
        experts = self.up @ self.down  # (n, m_out, m)
        n = self.experts
        rules = (self.rules if rules is None else rules).to(experts.dtype)
        return torch.einsum("ipq,iab->paqb", rules, experts).reshape(n * self.out_block, n * self.block)

    def delta(self, x: torch.Tensor, rules: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dW @ x; `rules` (the tensor S) defaults to the site's own."""
        if self.dense_is_cheaper():
            return x @ self.dense_delta(rules).T
        return self.factorised_delta(x, rules)

    def factorised_delta(self, x: torch.Tensor, rules: Optional[torch.Tensor] = None) -> torch.Tensor:
        """dW @ x without forming dW. Since everything is linear,
        (dW x)[p] = sum_i D_i (sum_q S_i[p, q] U_i x_q): project each block q to every expert's
        rank-r space, mix blocks with the rules there (n^3 r work per token, not n^2 d), then lift
        back with D. Two matmuls of d x (n r) plus a tiny mixing step."""
        n, r, m = self.experts, self.rank, self.block
        blocks = x.reshape(-1, n, m)  # (T, q, m)
        down = self.down.permute(2, 0, 1).reshape(m, n * r)  # U stacked: (m, i r)
        low = (blocks @ down).view(-1, n, n, r)  # (T, q, i, r) = U_i x_q
        rules = self.rules if rules is None else rules
        mixed = torch.einsum("ipq,tqir->tpir", rules.to(low.dtype), low)  # sum_q S_i[p, q] U_i x_q
        up = self.up.permute(0, 2, 1).reshape(n * r, self.out_block)  # D stacked: (i r, m_out)
        out = mixed.reshape(-1, n, n * r) @ up  # (T, p, m_out) = sum_i D_i (.)
        return out.reshape(*x.shape[:-1], n * self.out_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dropped = self.dropout(x)
        if torch.is_grad_enabled() and not self.base_is_trained() and \
                x.numel() * x.element_size() >= RECOMPUTE_MIN_BYTES:
            params = (self.down, self.up, self.rules)
            return RecomputedSite.apply(x, dropped, self, *params)
        return self.plain_forward(x, dropped)

    def plain_forward(self, x: torch.Tensor, dropped: torch.Tensor,
                      rules: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.parallel:
            return self.base(x) + self.scale * self.delta(dropped, rules)
        return self.base(x + self.scale * self.delta(dropped, rules))

    def base_is_trained(self) -> bool:
        return any(p.requires_grad for p in self.base.parameters())

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """The dense matrix dW (d x d, or W's shape when parallel), in float64 (used only for merging)."""
        rules = self.rules.double()
        experts = torch.bmm(self.up.double(), self.down.double())  # (n, m, m) = D_i U_i
        return sum(torch.kron(rules[i], experts[i]) for i in range(self.experts))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        weight = self.base.weight.double()
        if self.parallel:  # W + s dW
            return copy_linear(self.base, weight + self.scale * self.delta_weight())
        merged = weight + self.scale * weight @ self.delta_weight()  # W (I + s dW)
        return copy_linear(self.base, merged)


class RecomputedSite(torch.autograd.Function):
    """A site's forward (`ALoReLinear.plain_forward`) that keeps only the adapter's input for the
    backward. Autograd would keep the expert product's intermediates (the (T, n, n, r) projections,
    their permuted copies) and, sequentially, the adapted input x + s dW x of the frozen W. The
    backward needs neither: W is frozen, so the gradient through it is g W whatever its input, and
    dW x is recomputed from x (a few small matmuls). The same operations in the same order, so the
    gradients are the ones autograd computes (the golden demo test pins ALoRE's numbers)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, dropped, site, down, up, rules):
        ctx.site = site
        ctx.dropped_is_x = dropped is x
        # The rules as given: a parameter, a buffer, or a tensor computed from parameters (KAdaptation's
        # rank-1 rules); the backward differentiates through this tensor, autograd takes it from there.
        ctx.save_for_backward(dropped, rules)
        return site.plain_forward(x, dropped, rules)  # the rules as given: computed rules are formed once

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad):
        site = ctx.site
        dropped, rules = ctx.saved_tensors
        rules_leaf = rules.detach().requires_grad_(ctx.needs_input_grad[5])
        params = (site.down, site.up, rules_leaf)
        trained = [p for p in params if p.requires_grad]
        with torch.enable_grad():
            leaf = dropped.detach().requires_grad_(ctx.needs_input_grad[0] or ctx.needs_input_grad[1])
            delta = site.delta(leaf, rules_leaf)
        through_w = grad @ site.base.weight.to(grad.dtype)  # the gradient at W's input
        wanted = ([leaf] if leaf.requires_grad else []) + trained
        grads = iter(torch.autograd.grad(delta, wanted, site.scale * (grad if site.parallel else through_w),
                                         allow_unused=True) if wanted else ())
        grad_dropped = next(grads) if leaf.requires_grad else None
        grad_params = {id(p): next(grads) for p in trained}
        grad_x = through_w if ctx.needs_input_grad[0] else None
        if ctx.dropped_is_x and grad_dropped is not None:  # x fed both paths: autograd would sum them
            grad_x, grad_dropped = grad_x + grad_dropped, None
        return (grad_x, grad_dropped, None, *(grad_params.get(id(p)) for p in params))


def apply_alore(model: nn.Module, config: ALoReConfig) -> nn.Module:
    sites = linear_sites(model, config.sites)
    freeze(model)
    reference = sites[0][1].weight
    factory = dict(device=reference.device, dtype=reference.dtype)
    def new_rules(learned: bool = True) -> ALoReRules:
        return ALoReRules(config.experts, learned=learned, noise=config.rule_noise, init=config.rule_init, **factory)

    if config.rules in ("shared", "per_layer"):
        # Registered once on the model (a ModuleDict by block for per_layer), referenced by the sites.
        groups = {name.rsplit(".", 2)[0] if config.rules == "per_layer" else "all" for name, _l, _k in sites}
        owners = {group: new_rules() for group in sorted(groups)}
        model.add_module(RULES_ATTR, owners["all"] if config.rules == "shared" else
                         nn.ModuleDict({g.replace(".", "_"): r for g, r in owners.items()}))
    for name, linear, _kind in sites:
        if config.rules in ("shared", "per_layer"):
            group = name.rsplit(".", 2)[0] if config.rules == "per_layer" else "all"
            site = ALoReLinear(linear, config, owners[group], own_rules=False)
        else:
            site = ALoReLinear(linear, config, new_rules(config.rules == "per_site"), own_rules=True)
        replace_submodule(model, name, site)
    train_head(model)
    return model


def merge_alore(model: nn.Module) -> nn.Module:
    merge_modules(model, ALoReLinear, "alore")
    if hasattr(model, RULES_ATTR):
        delattr(model, RULES_ATTR)
    return model


