"""`peft:<type>`: any HF peft tuner that adapts nn.Linear layers, on the same type-selected sites
as our own methods, configured through --opt with peft's own option names and defaults, merged
with peft's own merge. The registry entries (and their options) are in `methods.specs.peft_types`."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Dict, List

import peft
from torch import nn

from .lora import split_targets, train_peft_layers
from .modules import freeze, train_head
from .specs.peft_types import PEFT_TYPES, TYPES

# Options that belong to peft's bookkeeping rather than to the method.
NOT_OPTIONS = {"peft_version", "base_model_name_or_path", "revision", "inference_mode", "fan_in_fan_out",
               "save_projection"}

# (IA)^3 (Liu et al. 2022, Sec. 3.3) rescales the keys, the values and the feed-forward network's
# intermediate activation: the outputs of k and v, and the input of fc2 (a peft feed-forward module).
IA3_SITES = {"attn": ("k", "v"), "mlp": "fc2"}


def _type_name(hint: Any) -> str | None:
    """`int`, `float | none` ... for peft's simple option types; None for anything else."""
    names = {t: name for name, t in TYPES.items()}
    if hint in names:
        return names[hint]
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        return f"{names[inner]} | none" if inner in names else None
    return None


def peft_schema(config_name: str) -> List[Dict[str, Any]]:
    """peft's simple options of one config class: name, type, default and help (JSON, for the cache)."""
    peft_cls = getattr(peft, config_name)
    hints = typing.get_type_hints(peft_cls)
    fields = []
    for f in dataclasses.fields(peft_cls):
        type_name = _type_name(hints[f.name])
        if f.name in NOT_OPTIONS or type_name is None or f.default is dataclasses.MISSING:
            continue
        fields.append({"name": f.name, "type": type_name, "default": f.default,
                       "help": str(f.metadata.get("help", ""))})
    return fields


def apply_peft(model: nn.Module, config: Any, kind: str) -> nn.Module:
    peft_cls = getattr(peft, PEFT_TYPES[kind][0])
    options = {k: v for k, v in dataclasses.asdict(config).items() if k != "sites"}
    if kind == "ia3":
        sites = split_targets(model, config.sites, IA3_SITES["attn"], mlp_layer=IA3_SITES["mlp"])
        options["feedforward_modules"] = [name for name, site in sites if site == "mlp"]
    else:
        sites = split_targets(model, config.sites, ("qkv",))
    targets = [name for name, _site in sites]
    peft_config = peft_cls(target_modules=targets, **options)
    tuner = peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING[peft_config.peft_type]
    if getattr(tuner, "uses_shared_state", False):
        # VeRA keeps its shared random projections on the tuner: peft needs its PeftModel wrapper,
        # which merge_peft unwraps again with merge_and_unload.
        model = peft.get_peft_model(model, peft_config)
    else:
        model = peft.inject_adapter_in_model(peft_config, model)
    freeze(model)
    train_peft_layers(model)
    train_head(model)
    return model
