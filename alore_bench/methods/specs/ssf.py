"""SSF: options and registry entry; the modules are in `methods.ssf`."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import doc
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class SSFConfig:
    init_std: float = doc("std of the initialisation around scale 1 and shift 0 (the paper's 0.02; "
                          "0 starts as an exact identity)", default=0.02)

METHODS.register("ssf", MethodSpec(
    name="ssf", display="SSF", config_cls=SSFConfig, apply=Lazy("alore_bench.methods.ssf:apply_ssf"), merge=Lazy("alore_bench.methods.ssf:merge_ssf"), identity_at_init=False,
    paper="Lian et al. 2022, Scaling & Shifting Your Features (NeurIPS)",
    summary="per-channel scale and shift after every linear, norm and the patch projection; mergeable"))
