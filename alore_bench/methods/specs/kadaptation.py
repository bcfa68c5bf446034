"""KAdaptation: options and registry entry; the modules are in `methods.kadaptation`."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec
from .alore import ALoReConfig
from .lora import attention_targets


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

METHODS.register("kadaptation", MethodSpec(
    name="kadaptation", display="KAdaptation", config_cls=KAdaptationConfig, apply=Lazy("alore_bench.methods.kadaptation:apply_kadaptation"), merge=Lazy("alore_bench.methods.kadaptation:merge_kadaptation"),
    paper="He et al. 2023, Parameter-efficient Model Adaptation for Vision Transformers (AAAI), KAdaptation",
    summary="PHM (sum of Kronecker products) update of W_q and W_v, rules shared across layers; mergeable"))
