"""KAdaptation: options and registry entry; the modules are in `methods.kadaptation`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec
from .alore import ALoReConfig
from .lora import attention_targets

# PEViT's scale: `lora_attn_alpha / lora_attn_dim * 5` with alpha 128 and dim 4
# (vision_benchmark/evaluation/model.py, MultiheadAttention.__init__ and adapter_forward).
PEVIT_SCALE = 128 / 4 * 5


@dataclass(frozen=True)
class KAdaptationConfig:
    experts: int = doc("number n of Kronecker terms (PEViT's phm_dim: 32); must divide the width", default=32)
    rank: int = doc("rank of each term's fast factor u_i v_i^T (PEViT's phm_rank: 1)", default=1)
    scale: float = doc("scale s of the update (PEViT: 5 alpha / r = 160)", default=PEVIT_SCALE)
    targets: str = doc("attention projections to adapt (comma list of q, k, v)", default="q,v")
    dropout: float = doc("dropout on the adapter input during training", default=0.0)
    rules: Literal["rank1", "full"] = doc(
        "rank1: each shared n x n rule is an outer product l_i r_i^T, both U(+-0.01) (PEViT's factorised "
        "phm rules); full: dense n x n rules, U(+-1/sqrt(n))", default="rank1")
    bias: bool = doc("a trained bias per attention layer, added to the output of every adapted projection "
                     "(PEViT's `b`, zero at start)", default=True)

    def validate(self) -> None:
        if self.experts < 1 or self.rank < 1:
            raise UserError(f"kadaptation experts and rank must be at least 1, got {self.experts}, {self.rank}")
        if attention_targets(self.targets) == ("qkv",):
            raise UserError("kadaptation targets: give a comma list of q, k, v (e.g. q,v)")

    def as_alore(self) -> ALoReConfig:
        return ALoReConfig(experts=self.experts, rank=self.rank, scale=self.scale, placement="parallel",
                           rules="shared", rule_init="random", dropout=self.dropout)


def kadaptation_budget(model, config: KAdaptationConfig) -> int:
    """PEViT's count: per adapted projection n (r m + r m) fast factors (= 2 r d), per attention layer a
    bias of d where asked, per target kind one set of rules (2 n^2 factorised, n^3 dense)."""
    from ...backbones.sites import ATTENTION_TYPES

    widths = [m.qkv.in_features for m in model.modules() if isinstance(m, ATTENTION_TYPES)]
    parts = len(attention_targets(config.targets))
    rules = 2 * config.experts**2 if config.rules == "rank1" else config.experts**3
    return sum(parts * 2 * config.rank * d + (d if config.bias else 0) for d in widths) + parts * rules


METHODS.register("kadaptation", MethodSpec(
    name="kadaptation", display="KAdaptation", config_cls=KAdaptationConfig, apply=Lazy("alore_bench.methods.kadaptation:apply_kadaptation"), merge=Lazy("alore_bench.methods.kadaptation:merge_kadaptation"),
    budget=kadaptation_budget,
    paper="He et al. 2023, Parameter-efficient Model Adaptation for Vision Transformers (AAAI), KAdaptation",
    summary="PHM (sum of Kronecker products) update of W_q and W_v, rank-1 rules shared across layers, a bias per layer; mergeable"))
