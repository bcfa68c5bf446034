"""A Kronecker / PHM adapter of the KAdaptation kind (He et al. 2023, "Parameter-efficient Model
Adaptation for Vision Transformers", AAAI): the update of W_q and W_v is a sum of Kronecker
products, dW = sum_i A_i kron (u_i v_i^T), with the n x n "slow" rules A_i shared by every layer
(one set for q, one for v) and rank-1 "fast" factors per layer, added in parallel:
y = W x + s dW x + b. It is ALoRE's building block without ALoRE's choices (sequential placement on
the inputs of qkv and fc1, merged experts of rank r): the baseline that isolates what ALoRE's
multi-expert aggregation adds.

As eric-ai-lab/PEViT `vision_benchmark/evaluation/model.py` builds it: phm_dim 32, phm_rank 1,
factorised fast weights, adapter on q and v (MultiheadAttention.__init__); the shared rules are
factorised too, A_i = l_i r_i^T with l (32, 32, 1) and r (32, 1, 32) both U(+-0.01) (Transformer.__init__,
`phm_rule1_left` / `_right`); each attention layer has one bias `b`, zero at start, added to both the q
and the v update (`self.b`, adapter_forward); the scale is 5 * alpha / r = 160. `--opt rules=full` gives
dense n x n rules and `--opt bias=false` drops the bias. Not reproduced from that CLIP-specific code: its
dropout 0.5 on the update matrix H, and its initialisation of both fast factors to zero (with which
neither could get a gradient); here one factor starts at zero. Linear in the weights, so it merges exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from ..backbones.sites import ATTENTION_TYPES, SplitQKV, family_of, fuse_qkv
from ..errors import UserError
from .alore import ALoReLinear, ALoReRules
from .modules import freeze, merge_modules, replace_submodule, train_head
from .specs.kadaptation import KAdaptationConfig  # noqa: F401  (importable from here too)
from .lora import attention_targets, split_targets

RULES_ATTR = "kadaptation_rules"
BIAS_ATTR = "kadaptation_bias"
RULE_BOUND = 0.01  # PEViT: phm_rule*_left/right.data.uniform_(-0.01, 0.01)


class RankOneRules(nn.Module):
    """n rules of size n x n, each the outer product of a left and a right vector: weight = l @ r."""

    def __init__(self, experts: int, device=None, dtype=None):
        super().__init__()
        self.left = nn.Parameter(torch.empty(experts, experts, 1, device=device, dtype=dtype))
        self.right = nn.Parameter(torch.empty(experts, 1, experts, device=device, dtype=dtype))
        if not self.left.is_meta:
            nn.init.uniform_(self.left, -RULE_BOUND, RULE_BOUND)
            nn.init.uniform_(self.right, -RULE_BOUND, RULE_BOUND)

    @property
    def weight(self) -> torch.Tensor:
        return torch.bmm(self.left, self.right)


class BiasedSite(nn.Module):
    """An adapted projection plus the attention layer's shared KAdaptation bias."""

    def __init__(self, site: ALoReLinear, bias: nn.Parameter):
        super().__init__()
        self.site = site
        object.__setattr__(self, "_bias", bias)  # registered once, on the SplitQKV that owns it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.site(x) + self._bias

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        merged = self.site.merged()
        if merged.bias is None:
            merged.bias = nn.Parameter(torch.zeros_like(self._bias), requires_grad=False)
        merged.bias.add_(self._bias.to(merged.bias.dtype))
        return merged


def apply_kadaptation(model: nn.Module, config: KAdaptationConfig) -> nn.Module:
    if not any(isinstance(m, ATTENTION_TYPES) for m in model.modules()):
        raise UserError(f"kadaptation adapts attention projections; {family_of(model)} has no attention blocks")
    targets = [name for name, _kind in split_targets(model, "attn", attention_targets(config.targets))]
    freeze(model)
    alore = config.as_alore()
    first = model.get_submodule(targets[0])
    factory = dict(device=first.weight.device, dtype=first.weight.dtype)

    def new_rules() -> nn.Module:
        if config.rules == "rank1":
            return RankOneRules(config.experts, **factory)
        return ALoReRules(config.experts, learned=True, noise=0.0, init="random", **factory)

    rules = nn.ModuleDict({part: new_rules() for part in attention_targets(config.targets)})
    model.add_module(RULES_ATTR, rules)
    for name in targets:
        site = ALoReLinear(model.get_submodule(name), alore, rules[name[-1]], own_rules=False)
        if config.bias:
            qkv = model.get_submodule(name.rpartition(".")[0])
            if not hasattr(qkv, BIAS_ATTR):
                qkv.register_parameter(BIAS_ATTR, nn.Parameter(torch.zeros(site.base.out_features, **factory)))
            site = BiasedSite(site, getattr(qkv, BIAS_ATTR))
        replace_submodule(model, name, site)
    train_head(model)
    return model


def merge_kadaptation(model: nn.Module) -> nn.Module:
    if not any(isinstance(m, ALoReLinear) for m in model.modules()):
        raise ValueError("merge: the model has no kadaptation layers")
    for wrapper in (BiasedSite, ALoReLinear):  # a BiasedSite merges its ALoReLinear with it
        if any(isinstance(m, wrapper) for m in model.modules()):
            merge_modules(model, wrapper, "kadaptation")
    for module in model.modules():
        if isinstance(module, SplitQKV) and BIAS_ATTR in module._parameters:
            del module._parameters[BIAS_ATTR]
    delattr(model, RULES_ATTR)
    return fuse_qkv(model)
