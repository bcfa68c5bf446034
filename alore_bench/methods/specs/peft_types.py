"""`peft:<type>`: the registry entries of HF peft's tuners, without importing peft. Each entry's
options are peft's own (names, types, defaults, help) read from peft's config class once per
installed peft version and kept in the code cache (`methods.peft_generic.peft_schema`); the entry
is built when it is first looked up, so listing or checking other methods never touches peft."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Dict, List, Optional, Tuple

from ...backbones.site_names import SiteChoice
from ...errors import UserError, param
from ..base import METHODS, Lazy, MethodSpec

# peft config class and paper of each registered type. LoRA has its own entry (`lora`).
PEFT_TYPES: Dict[str, Tuple[str, str]] = {
    "lokr": ("LoKrConfig", "Yeh et al. 2024, LyCORIS / LoKr (ICLR)"),
    "loha": ("LoHaConfig", "Hyeon-Woo et al. 2022, FedPara / LoHa (ICLR)"),
    "ia3": ("IA3Config", "Liu et al. 2022, (IA)^3 (NeurIPS)"),
    "vera": ("VeraConfig", "Kopiczko et al. 2024, VeRA (ICLR)"),
    "oft": ("OFTConfig", "Qiu et al. 2023, Orthogonal Finetuning (NeurIPS)"),
}
RANK_OPTIONS = ("r", "rank")
# The annotations a schema names (peft's simple options), and back.
TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def annotation_of(name: str) -> Any:
    """`int`, `float | none` ... as written by `peft_schema`, back to a type."""
    base, optional = (name[:-len(" | none")], True) if name.endswith(" | none") else (name, False)
    if base not in TYPES:
        raise ValueError(f"peft schema: unknown option type {name!r}")
    return Optional[TYPES[base]] if optional else TYPES[base]


def schema(kind: str) -> List[Dict[str, Any]]:
    from ...code_cache import cached

    def build() -> List[Dict[str, Any]]:
        from ..peft_generic import peft_schema

        return peft_schema(PEFT_TYPES[kind][0])

    return cached(f"peft-schema/{kind}", build, valid=lambda value: isinstance(value, list), registered_here=False)


def make_config_class(kind: str, fields: Optional[List[Dict[str, Any]]] = None) -> type:
    """A frozen dataclass of `sites` plus peft's simple options for this type."""
    if kind == "ia3":
        site_field = dataclasses.field(default="both", metadata={"help": (
            "attn: scale the outputs of k and v; mlp: scale the MLP's intermediate activation (fc2's input); "
            "both: the paper's (IA)^3")})
    else:
        site_field = dataclasses.field(default="attn", metadata={
            "help": "which linear layers to adapt: attn (fused qkv), mlp (fc1) or both"})
    specs = [("sites", SiteChoice, site_field)]
    for item in schema(kind) if fields is None else fields:
        specs.append((item["name"], annotation_of(item["type"]),
                      dataclasses.field(default=item["default"], metadata={"help": item["help"]})))

    def validate(config) -> None:  # peft accepts a rank of 0 and then divides by it (OFT: 0 = use its block size)
        for name in RANK_OPTIONS if kind != "oft" else ():
            value = getattr(config, name, None)
            if isinstance(value, int) and value < 1:
                raise UserError(f"{param('options', f'{name}={value}')} (method peft:{kind}): the rank must be at least 1")

    return dataclasses.make_dataclass(f"Peft{PEFT_TYPES[kind][0]}", specs, frozen=True,
                                      namespace={"validate": validate})


def peft_entry(kind: str) -> MethodSpec:
    config_name = PEFT_TYPES[kind][0]
    return MethodSpec(
        name=f"peft:{kind}", display=f"{kind} (peft)", config_cls=make_config_class(kind),
        apply=partial(Lazy("alore_bench.methods.peft_generic:apply_peft"), kind=kind),
        merge=Lazy("alore_bench.methods.lora:merge_peft"), identity_at_init=True, paper=PEFT_TYPES[kind][1],
        summary=("peft's IA3 on k, v and the MLP's intermediate activation, as the paper; mergeable" if kind == "ia3"
                 else f"peft's {config_name[:-6]} on the fused qkv (by default); mergeable"))


for _kind in PEFT_TYPES:
    METHODS.register_lazy(f"peft:{_kind}", partial(peft_entry, _kind))
