"""Adapter (Houlsby et al., as NOAH trains it) and AdaptFormer: options and registry entries; the modules are in `methods.adapters`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


Activation = Literal["quickgelu", "gelu", "relu"]

def _check_bottleneck(method: str, bottleneck: int, dropout: float) -> None:
    if bottleneck < 1:
        raise UserError(f"{method} bottleneck must be at least 1, got {bottleneck}")
    if not 0 <= dropout < 1:
        raise UserError(f"{method} dropout must lie in [0, 1), got {dropout}")

@dataclass(frozen=True)
class AdapterConfig:
    bottleneck: int = doc("hidden width of the bottleneck (NOAH's published row: 8)", default=8)
    placement: Literal["noah", "houlsby"] = doc(
        "noah: one adapter on the drop-pathed MLP output of each block (the published 0.16M row); "
        "houlsby: one after the attention and one after the MLP of each block (Houlsby et al.)", default="noah")
    act: Activation = doc("activation inside the bottleneck (NOAH: quickgelu)", default="quickgelu")
    init: Literal["noah", "xavier", "zero_up"] = doc(
        "noah: trunc-normal weights with std 0.02 and zero biases, as NOAH's model init leaves them (the "
        "published row); xavier: the xavier weights and N(0, 1e-6) biases of NOAH's adapter module; zero_up: "
        "up-projection zero, so the adapted model starts as the backbone", default="noah")
    dropout: float = doc("dropout on the hidden layer during training (NOAH: 0.1)", default=0.1)

    def validate(self) -> None:
        _check_bottleneck("adapter", self.bottleneck, self.dropout)

@dataclass(frozen=True)
class AdaptFormerConfig:
    bottleneck: int = doc("hidden width of the bottleneck (the published VTAB-1k row: 8, 0.16M)", default=8)
    scale: float = doc("scale s of the parallel branch", default=0.1)
    dropout: float = doc("dropout on the hidden layer during training (official: 0.1)", default=0.1)

    def validate(self) -> None:
        _check_bottleneck("adaptformer", self.bottleneck, self.dropout)

def adapter_starts_as_backbone(config: AdapterConfig) -> bool:
    return config.init == "zero_up"

METHODS.register("adapter", MethodSpec(
    name="adapter", display="Adapter", config_cls=AdapterConfig, apply=Lazy("alore_bench.methods.adapters:apply_adapter"), identity_at_init=adapter_starts_as_backbone,
    paper="Houlsby et al. 2019 (ICML), as NOAH's code trains it for the published VTAB-1k row",
    summary="sequential bottleneck adapter on each block's MLP output (QuickGELU, bottleneck 8, NOAH's init)"))

METHODS.register("adaptformer", MethodSpec(
    name="adaptformer", display="AdaptFormer", config_cls=AdaptFormerConfig, apply=Lazy("alore_bench.methods.adapters:apply_adaptformer"),
    paper="Chen et al. 2022, AdaptFormer (NeurIPS)",
    summary="parallel bottleneck adapter reading each block's residual stream (ReLU, bottleneck 8, scale 0.1)"))
