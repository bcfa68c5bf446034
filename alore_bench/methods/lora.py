"""LoRA through HF peft (Hu et al. 2022).

Default: the variant behind the published VTAB-1k "LoRA" 0.29M row, NOAH's code (the timm model
its VTAB runs build, `model/supernet_vision_transformer_timm.py` Attention, lines 225-228, 242 and
278): one rank-8 update of the fused qkv projection, B A x, no scaling, dropout 0.1 on the LoRA input (`supernet_train_prompt.py` line
207, --drop_rate_LoRA, not overridden by `configs/LoRA/VTAB/slurm_train_lora_vtab.sh`; rank 8 from
`experiments/LoRA/ViT-B_prompt_lora_8.yaml`). A and B start trunc-normal with std 0.02: the module
code gives A kaiming-uniform and B zero (lines 225-228), but `VisionTransformer.__init__` then calls
`init_weights` (`self.apply(_init_vit_weights)`), which resets every nn.Linear, LoRA_a and LoRA_b
among them, to trunc_normal_(std=.02) with zero bias, and the npz loader never touches them; so
NOAH trained from a non-zero B. `--opt init=zero_b` is the LoRA paper's start. `--opt targets=q,v` puts separate adapters on q and
v as the LoRA paper does (same budget, a different method); the fused projection is split into
q, k, v layers for that and fused again when merging."""

from __future__ import annotations

from typing import List, Tuple

from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from timm.layers import trunc_normal_
import torch
from torch import nn

from ..backbones.sites import SiteChoice, fuse_qkv, linear_sites, split_qkv
from .modules import freeze, replace_submodule, train_head
from .specs.lora import attention_targets, LoRAConfig  # noqa: F401  (importable from here too)


def split_targets(model: nn.Module, sites: SiteChoice, targets: Tuple[str, ...],
                  mlp_layer: str = "fc1") -> List[Tuple[str, str]]:
    """(qualified name, kind) of the layers a peft method adapts: each attention site's fused qkv, or
    its q / k / v after splitting the fused projection; each MLP's `mlp_layer`."""
    found = linear_sites(model, sites)
    split = targets != ("qkv",) and any(kind == "attn" for _n, _l, kind in found)
    names: List[Tuple[str, str]] = []
    for name, _linear, kind in found:
        if kind == "attn":
            names += [(f"{name}.{p}", "attn") for p in targets] if split else [(name, "attn")]
        else:
            names.append((name.rpartition(".")[0] + f".{mlp_layer}" if "." in name else mlp_layer, "mlp"))
    if split:
        split_qkv(model)
    return names


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
    targets = [name for name, _kind in split_targets(model, config.sites, attention_targets(config.targets))]
    peft_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                             target_modules=targets, bias="none")
    model = inject_adapter_in_model(peft_config, model)
    if config.init == "noah":
        noah_init(model)
    freeze(model)
    train_peft_layers(model)
    train_head(model)
    return model


@torch.no_grad()
def noah_init(model: nn.Module) -> None:
    """Every LoRA A and B as NOAH's `_init_vit_weights` leaves an nn.Linear: trunc-normal, std 0.02
    (model/supernet_vision_transformer_timm.py, `init_weights`; its LoRA layers have no bias)."""
    for _name, layer in peft_layers(model):
        for factors in (layer.lora_A, layer.lora_B):
            for linear in factors.values():
                trunc_normal_(linear.weight, std=0.02)


def merge_peft(model: nn.Module) -> nn.Module:
    """Merge every peft layer with peft's own merge, then unwrap it to the plain base layer."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return fuse_qkv(model.merge_and_unload())
    layers = peft_layers(model)
    if not layers:
        raise ValueError("merge_peft: the model has no peft adapter layers")
    for name, layer in layers:
        layer.merge()
        replace_submodule(model, name, layer.get_base_layer())
    return fuse_qkv(model)


