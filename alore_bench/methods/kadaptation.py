"""A Kronecker / PHM adapter of the KAdaptation kind (He et al. 2023, "Parameter-efficient Model
Adaptation for Vision Transformers", AAAI): the update of W_q and W_v is a sum of Kronecker
products, dW = sum_i A_i kron (u_i v_i^T), with the n x n "slow" rules A_i shared by every layer
(one set for q, one for v) and rank-1 "fast" factors per layer, added in parallel:
y = W x + s dW x. It is ALoRE's building block without ALoRE's choices (sequential placement on
the inputs of qkv and fc1, merged experts of rank r): the baseline that isolates what ALoRE's
multi-expert aggregation adds.

Structure from eric-ai-lab/PEViT `vision_benchmark/evaluation/model.py` (MultiheadAttention:
phm_dim 32, phm_rank 1, factorised fast weights, kronecker_product_einsum_batched, adapter on q and
v). Not reproduced from that CLIP-specific code: its scale 5 * alpha / r, its dropout 0.5 on the
update matrix, and its initialisation of both fast factors to zero (with which neither could get
a gradient); here one factor starts at zero and the rules are random (uniform, bound 1/sqrt(n)).
Linear in the weights, so it merges exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..backbones.sites import ATTENTION_TYPES, family_of, fuse_qkv
from ..config import doc
from ..errors import UserError
from .alore import ALoReConfig, ALoReLinear, ALoReRules
from .base import METHODS, MethodSpec, freeze, merge_modules, replace_submodule, train_head
from .lora import attention_targets, split_targets

RULES_ATTR = "kadaptation_rules"


@dataclass(frozen=True)
class KAdaptationConfig:
    experts: int = doc("number n of Kronecker terms (PEViT's phm_dim: 32); must divide the width", default=32)
    rank: int = doc("rank of each term's fast factor u_i v_i^T (PEViT's phm_rank: 1)", default=1)
    scale: float = doc("scale s of the update", default=1.0)
    targets: str = doc("attention projections to adapt (comma list of q, k, v)", default="q,v")
    dropout: float = doc("dropout on the adapter input during training", default=0.0)

    def validate(self) -> None:
        if self.experts < 1 or self.rank < 1:
            raise UserError(f"kadaptation experts and rank must be at least 1, got {self.experts}, {self.rank}")
        if attention_targets(self.targets) == ("qkv",):
            raise UserError("kadaptation targets: give a comma list of q, k, v (e.g. q,v)")

    def as_alore(self) -> ALoReConfig:
        return ALoReConfig(experts=self.experts, rank=self.rank, scale=self.scale, placement="parallel",
                           rules="shared", rule_init="random", dropout=self.dropout)


def apply_kadaptation(model: nn.Module, config: KAdaptationConfig) -> nn.Module:
    if not any(isinstance(m, ATTENTION_TYPES) for m in model.modules()):
        raise UserError(f"kadaptation adapts attention projections; {family_of(model)} has no attention blocks")
    targets = [name for name, _kind in split_targets(model, "attn", attention_targets(config.targets))]
    freeze(model)
    alore = config.as_alore()
    first = model.get_submodule(targets[0])
    factory = dict(device=first.weight.device, dtype=first.weight.dtype)
    rules = nn.ModuleDict({part: ALoReRules(config.experts, learned=True, noise=0.0, init="random", **factory)
                           for part in attention_targets(config.targets)})
    model.add_module(RULES_ATTR, rules)
    for name in targets:
        replace_submodule(model, name, ALoReLinear(model.get_submodule(name), alore, rules[name[-1]], own_rules=False))
    train_head(model)
    return model


def merge_kadaptation(model: nn.Module) -> nn.Module:
    merge_modules(model, ALoReLinear, "kadaptation")
    delattr(model, RULES_ATTR)
    return fuse_qkv(model)


METHODS.register("kadaptation", MethodSpec(
    name="kadaptation", display="KAdaptation", config_cls=KAdaptationConfig, apply=apply_kadaptation, merge=merge_kadaptation,
    paper="He et al. 2023, Parameter-efficient Model Adaptation for Vision Transformers (AAAI), KAdaptation",
    summary="PHM (sum of Kronecker products) update of W_q and W_v, rules shared across layers; mergeable"))
