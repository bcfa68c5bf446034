"""ARC: options and registry entry; the modules are in `methods.arc`."""

from __future__ import annotations

from dataclasses import dataclass

from ...backbones.site_names import SiteChoice
from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class ARCConfig:
    dim: int = doc("bottleneck width r of the shared projections (official: 50)", default=50)
    dropout: float = doc("dropout on the bottleneck during training (official: 0.1)", default=0.1)
    sites: SiteChoice = doc("attn: ARC_att (attention only); both: ARC (attention and MLP)", default="both")

    def validate(self) -> None:
        if self.dim < 1:
            raise UserError(f"arc dim must be at least 1, got {self.dim}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"arc dropout must lie in [0, 1), got {self.dropout}")

METHODS.register("arc", MethodSpec(
    name="arc", display="ARC", config_cls=ARCConfig, apply=Lazy("alore_bench.methods.arc:apply_arc"), merge=Lazy("alore_bench.methods.arc:merge_arc"), identity_at_init=False,
    paper="Dong et al. 2023, Efficient Adaptation of Large Vision Transformer via Adapter Re-Composing (NeurIPS)",
    summary="linear adapters with projections shared by all blocks, re-composed per block; mergeable"))
