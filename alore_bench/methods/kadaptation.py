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


from torch import nn

from ..backbones.sites import ATTENTION_TYPES, family_of, fuse_qkv
from ..errors import UserError
from .alore import ALoReLinear, ALoReRules
from .modules import freeze, merge_modules, replace_submodule, train_head
from .specs.kadaptation import KAdaptationConfig  # noqa: F401  (importable from here too)
from .lora import attention_targets, split_targets

RULES_ATTR = "kadaptation_rules"


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


