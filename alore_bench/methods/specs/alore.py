"""ALoRE: options and registry entry; the modules (and the method's definition) are in `methods.alore`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...backbones.site_names import SiteChoice
from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class ALoReConfig:
    experts: int = doc("number of low-rank experts n; must divide the token width d", default=4)
    rank: int = doc("rank r of each expert's factors D_i (m x r) and U_i (r x m)", default=4)
    scale: float = doc("scale s of the adapter path x + s * dW x (a per-task hyper-parameter)", default=1.0)
    sites: SiteChoice = doc("which linear inputs to adapt: attn (qkv), mlp (fc1) or both", default="both")
    rules: Literal["shared", "per_layer", "per_site", "fixed"] = doc(
        "expert rules S_i: one n x n x n set shared by all sites, one per transformer block, one per site, "
        "or fixed to identity (with experts=1 this is the single-branch sequential adapter)",
        default="shared",
    )
    rule_init: Literal["identity", "random"] = doc(
        "initialisation of learned rules: identity plus noise of std rule_noise, or random (uniform, "
        "bound 1/sqrt(n))", default="identity")
    rule_noise: float = doc("std of the noise added to the identity initialisation of learned rules", default=0.02)
    zero_factor: Literal["down", "up"] = doc(
        "which factor starts at zero so the model starts as the backbone: U_i (down, default) or D_i (up); "
        "the other gets the fan-in init", default="down")
    placement: Literal["sequential", "parallel"] = doc(
        "sequential: x -> W (x + s dW x) (mergeable into W, the paper's); parallel: x -> W x + s dW x with dW "
        "shaped like W (a PHM update of the weight, KAdaptation-style)", default="sequential")
    dropout: float = doc("dropout on the adapter path during training", default=0.0)

    def validate(self) -> None:
        if self.experts < 1 or self.rank < 1:
            raise UserError(f"ALoRE experts and rank must be at least 1, got experts={self.experts}, rank={self.rank}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"ALoRE dropout must lie in [0, 1), got {self.dropout}")

METHODS.register(
    "alore",
    MethodSpec(
        name="alore", display="ALoRE",
        config_cls=ALoReConfig,
        apply=Lazy("alore_bench.methods.alore:apply_alore"),
        merge=Lazy("alore_bench.methods.alore:merge_alore"),
        paper="Du et al. 2024, ALoRE (arXiv 2412.08341)",
        summary="low-rank experts aggregated by Kronecker products, sequential and mergeable",
    ),
)
