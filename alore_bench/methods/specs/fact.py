"""FacT-TT and FacT-TK: options and registry entries; the modules are in `methods.fact`."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import doc
from ...errors import UserError
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class FacTConfig:
    rank: int = doc("rank r of the shared factors U, V and of each r x r core (per task in the paper: "
                    "the fact_tt_paper preset)", default=8)
    scale: float = doc("scale s of the update (per task in the paper: the fact_tt_paper preset)", default=1.0)
    dropout: float = doc("dropout after each core during training (official: 0.1)", default=0.1)

    def validate(self) -> None:
        if self.rank < 1:
            raise UserError(f"FacT rank must be at least 1, got {self.rank}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"FacT dropout must lie in [0, 1), got {self.dropout}")

@dataclass(frozen=True)
class FacTTKConfig(FacTConfig):
    rank: int = doc("rank r of U, V and of the shared r x r x r core tensor (per task in the paper: "
                    "16 or 32, the fact_tk_paper preset)", default=32)
    scale: float = doc("scale s of the update (per task in the paper: the fact_tk_paper preset)", default=1.0)

METHODS.register("fact_tt", MethodSpec(
    name="fact_tt", display="FacT-TT", config_cls=FacTConfig, apply=Lazy("alore_bench.methods.fact:apply_fact_tt"), merge=Lazy("alore_bench.methods.fact:merge_fact"),
    paper="Jie & Deng 2023, FacT: Factor-Tuning (AAAI), tensor-train form",
    summary="all ViT weight updates as one tensor-train factorised tensor; mergeable"))

METHODS.register("fact_tk", MethodSpec(
    name="fact_tk", display="FacT-TK", config_cls=FacTTKConfig, apply=Lazy("alore_bench.methods.fact:apply_fact_tk"), merge=Lazy("alore_bench.methods.fact:merge_fact"),
    paper="Jie & Deng 2023, FacT: Factor-Tuning (AAAI), Tucker form (the published 'FacT' 0.07M row)",
    summary="all ViT weight updates as one Tucker-factorised tensor; mergeable"))
