"""`peft:<type>`: any HF peft tuner that adapts nn.Linear layers, on the same type-selected sites
as our own methods, configured through --opt with peft's own option names and defaults, merged
with peft's own merge."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Dict, Tuple

import peft
from torch import nn

from ..backbones.sites import SiteChoice
from ..errors import UserError, param
from .base import METHODS, MethodSpec, freeze, train_head
from .lora import merge_peft, split_targets, train_peft_layers

# peft config class and paper of each registered type. LoRA has its own entry (`lora`).
PEFT_TYPES: Dict[str, Tuple[str, str]] = {
    "lokr": ("LoKrConfig", "Yeh et al. 2024, LyCORIS / LoKr (ICLR)"),
    "loha": ("LoHaConfig", "Hyeon-Woo et al. 2022, FedPara / LoHa (ICLR)"),
    "ia3": ("IA3Config", "Liu et al. 2022, (IA)^3 (NeurIPS)"),
    "vera": ("VeraConfig", "Kopiczko et al. 2024, VeRA (ICLR)"),
    "oft": ("OFTConfig", "Qiu et al. 2023, Orthogonal Finetuning (NeurIPS)"),
}
# Options that belong to peft's bookkeeping rather than to the method.
NOT_OPTIONS = {"peft_version", "base_model_name_or_path", "revision", "inference_mode", "fan_in_fan_out",
               "save_projection"}
SIMPLE = (int, float, bool, str)


def _is_simple(hint: Any) -> bool:
    if hint in SIMPLE:
        return True
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and \
        all(a in SIMPLE + (type(None),) for a in typing.get_args(hint))


# (IA)^3 (Liu et al. 2022, Sec. 3.3) rescales the keys, the values and the feed-forward network's
# intermediate activation: the outputs of k and v, and the input of fc2 (a peft feed-forward module).
IA3_SITES = {"attn": ("k", "v"), "mlp": "fc2"}


RANK_OPTIONS = ("r", "rank")


def make_config_class(kind: str) -> type:
    """A frozen dataclass of `sites` plus peft's simple options for this type (names, types,
    defaults and help text taken from peft's config class)."""
    peft_cls = getattr(peft, PEFT_TYPES[kind][0])
    hints = typing.get_type_hints(peft_cls)
    if kind == "ia3":
        site_field = dataclasses.field(default="both", metadata={"help": (
            "attn: scale the outputs of k and v; mlp: scale the MLP's intermediate activation (fc2's input); "
            "both: the paper's (IA)^3")})
    else:
        site_field = dataclasses.field(default="attn", metadata={
            "help": "which linear layers to adapt: attn (fused qkv), mlp (fc1) or both"})
    fields = [("sites", SiteChoice, site_field)]
    for f in dataclasses.fields(peft_cls):
        if f.name in NOT_OPTIONS or not _is_simple(hints[f.name]) or f.default is dataclasses.MISSING:
            continue
        fields.append((f.name, hints[f.name], dataclasses.field(default=f.default, metadata=dict(f.metadata))))
    def validate(config) -> None:  # peft accepts a rank of 0 and then divides by it (OFT: 0 = use its block size)
        for name in RANK_OPTIONS if kind != "oft" else ():
            value = getattr(config, name, None)
            if isinstance(value, int) and value < 1:
                raise UserError(f"{param('options', f'{name}={value}')} (method peft:{kind}): the rank must be at least 1")

    return dataclasses.make_dataclass(f"Peft{peft_cls.__name__}", fields, frozen=True,
                                      namespace={"validate": validate})


def make_apply(kind: str):
    peft_cls = getattr(peft, PEFT_TYPES[kind][0])

    def apply(model: nn.Module, config: Any) -> nn.Module:
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

    return apply


for _kind, (_cls, _paper) in PEFT_TYPES.items():
    METHODS.register(f"peft:{_kind}", MethodSpec(
        name=f"peft:{_kind}", display=f"{_kind} (peft)", config_cls=make_config_class(_kind), apply=make_apply(_kind), merge=merge_peft,
        identity_at_init=True, paper=_paper,
        summary=("peft's IA3 on k, v and the MLP's intermediate activation, as the paper; mergeable" if _kind == "ia3"
                 else f"peft's {_cls[:-6]} on the fused qkv (by default); mergeable")))
