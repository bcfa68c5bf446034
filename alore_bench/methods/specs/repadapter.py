"""RepAdapter: options and registry entry; the modules are in `methods.repadapter`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...backbones.site_names import SiteChoice
from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class RepAdapterConfig:
    bottleneck: int = doc("hidden width r of the adapter", default=8)
    groups: int = doc("groups of the up-projection (r and d must be divisible by it)", default=2)
    scale: float = doc("scale s of the adapter path (a per-task hyper-parameter in the paper)", default=1.0)
    dropout: float = doc("dropout during training (official: 0.1)", default=0.1)
    dropout_on: Literal["hidden", "input"] = doc(
        "where the dropout acts: the hidden layer between the projections (official) or the adapter input",
        default="hidden")
    bias: bool = doc("give both projections a bias (official: yes; the paper's 0.22M budget counts weights only)",
                     default=True)
    sites: SiteChoice = doc("which linear inputs to adapt: attn (qkv), mlp (fc1) or both", default="both")

    def validate(self) -> None:
        if not 0 <= self.dropout < 1:
            raise UserError(f"repadapter dropout must lie in [0, 1), got {self.dropout}")
        if self.bottleneck < 1 or self.groups < 1 or self.bottleneck % self.groups:
            raise UserError(f"repadapter bottleneck ({self.bottleneck}) must be a positive multiple of groups "
                            f"({self.groups})")

METHODS.register("repadapter", MethodSpec(
    name="repadapter", display="RepAdapter", config_cls=RepAdapterConfig, apply=Lazy("alore_bench.methods.repadapter:apply_repadapter"), merge=Lazy("alore_bench.methods.repadapter:merge_repadapter"),
    paper="Luo et al. 2023, Towards Efficient Visual Adaption via Structural Re-parameterization (RepAdapter)",
    summary="sequential linear adapter, grouped up-projection, before attention and MLP; mergeable"))
