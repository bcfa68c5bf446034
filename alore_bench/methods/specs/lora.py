"""LoRA: options and registry entry; the peft code (and the published row it follows) is in `methods.lora`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Tuple

from ...backbones.site_names import SiteChoice
from ...config import doc
from ...errors import UserError, param
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = doc("LoRA rank r", default=8)
    alpha: float = doc("LoRA alpha; the update is scaled by alpha / rank", default=8.0)
    dropout: float = doc("dropout on the LoRA input during training (NOAH: 0.1)", default=0.1)
    sites: SiteChoice = doc("which linear layers get LoRA: attn (the attention projections), mlp (fc1) or both",
                            default="attn")
    targets: str = doc("attention targets: qkv (one LoRA on the fused projection, NOAH's published row) or a "
                       "comma list of q, k, v (separate LoRAs, e.g. q,v as in the LoRA paper)", default="qkv")
    init: Literal["noah", "zero_b"] = doc(
        "noah: A and B trunc-normal with std 0.02, as NOAH's model init leaves them (the published row); "
        "zero_b: A kaiming-uniform, B zero (the LoRA paper; the adapted model starts as the backbone)",
        default="noah")

    def validate(self) -> None:
        attention_targets(self.targets)
        if self.rank < 1:
            raise UserError(f"LoRA rank must be at least 1, got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"LoRA dropout must lie in [0, 1), got {self.dropout}")

def attention_targets(targets: str) -> Tuple[str, ...]:
    """("qkv",) for the fused projection, else the chosen subset of q, k, v in that order."""
    parts = [p.strip() for p in targets.split(",") if p.strip()]
    if parts == ["qkv"]:
        return ("qkv",)
    if not parts or any(p not in ("q", "k", "v") for p in parts) or len(set(parts)) != len(parts):
        raise UserError(f"{param('options', f'targets={targets}')}: use qkv, or a comma list of distinct q, k, v (e.g. targets=q,v)")
    return tuple(p for p in ("q", "k", "v") if p in parts)

def starts_as_backbone(config: LoRAConfig) -> bool:
    return config.init == "zero_b"


METHODS.register(
    "lora",
    MethodSpec(
        name="lora", display="LoRA",
        config_cls=LoRAConfig,
        apply=Lazy("alore_bench.methods.lora:apply_lora"),
        merge=Lazy("alore_bench.methods.lora:merge_peft"),
        identity_at_init=starts_as_backbone,
        paper="Hu et al. 2022, LoRA (ICLR)",
        summary="rank-8 update of the fused qkv weight (NOAH's published row) through peft; mergeable",
    ),
)
