"""LoRA through HF peft, injected into timm's fused qkv projection (Hu et al. 2022)."""

from __future__ import annotations

from dataclasses import dataclass

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ..backbones.sites import SiteChoice, linear_sites
from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, freeze, replace_submodule, train_head


@dataclass(frozen=True)
class LoRAConfig:
    rank: int = doc("LoRA rank r", default=8)
    alpha: float = doc("LoRA alpha; the update is scaled by alpha / rank", default=8.0)
    dropout: float = doc("dropout on the LoRA path during training", default=0.0)
    sites: SiteChoice = doc("which linear layers get LoRA: attn (fused qkv), mlp (fc1) or both", default="attn")

    def validate(self) -> None:
        if self.rank < 1:
            raise UserError(f"LoRA rank must be at least 1, got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"LoRA dropout must lie in [0, 1), got {self.dropout}")


def peft_layers(model: nn.Module) -> list[tuple[str, BaseTunerLayer]]:
    return [(name, module) for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def train_peft_layers(model: nn.Module) -> None:
    """Unfreeze exactly the adapter modules each peft layer declares as its own."""
    layers = peft_layers(model)
    if not layers:
        raise RuntimeError("peft injected no adapter layer: its targets matched no module")
    for _name, layer in layers:
        for attr in layer.adapter_layer_names:
            getattr(layer, attr).requires_grad_(True)


def apply_lora(model: nn.Module, config: LoRAConfig) -> nn.Module:
    # Explicit qualified names of the type-selected sites: peft matches them exactly.
    targets = [name for name, _linear, _kind in linear_sites(model, config.sites)]
    peft_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                             target_modules=targets, bias="none")
    model = inject_adapter_in_model(peft_config, model)
    freeze(model)
    train_peft_layers(model)
    train_head(model)
    return model


def merge_peft(model: nn.Module) -> nn.Module:
    """Merge every peft layer with peft's own merge, then unwrap it to the plain base layer."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    layers = peft_layers(model)
    if not layers:
        raise ValueError("merge_peft: the model has no peft adapter layers")
    for name, layer in layers:
        layer.merge()
        replace_submodule(model, name, layer.get_base_layer())
    return model


METHODS.register(
    "lora",
    MethodSpec(
        name="lora",
        config_cls=LoRAConfig,
        apply=apply_lora,
        merge=merge_peft,
        paper="Hu et al. 2022, LoRA (ICLR)",
        summary="low-rank update of the fused qkv weight through peft; mergeable",
    ),
)
