"""RLRR: options and registry entry; the modules are in `methods.rlrr`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import doc
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class RLRRConfig:
    ssf_init_std: float = doc("std of SSF's initialisation around scale 1 and shift 0 after the norms and "
                              "the patch embedding (official: 0.02)", default=0.02)
    residual_drop: Literal["dropout", "drop_path"] = doc(
        "what the recipe's drop_path rate does on each residual branch: dropout (element-wise nn.Dropout at "
        "the per-block rate, as RLRR's networks.py drop_path1/drop_path2) or drop_path (timm's per-sample "
        "stochastic depth)", default="dropout")

METHODS.register("rlrr", MethodSpec(
    name="rlrr", display="RLRR", config_cls=RLRRConfig, apply=Lazy("alore_bench.methods.rlrr:apply_rlrr"), merge=Lazy("alore_bench.methods.rlrr:merge_rlrr"), identity_at_init=False,
    paper="Dong et al. 2024, Low-Rank Rescaled Vision Transformer Fine-Tuning: A Residual Design Approach (CVPR)",
    summary="rank-1 residual rescaling of every block linear plus SSF after the norms; mergeable"))
