"""Full fine-tuning, linear probing, BitFit and LN-Tune: options and registry entries; the code is in `methods.basic`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import doc
from ..base import METHODS, Lazy, MethodSpec


@dataclass(frozen=True)
class FullConfig:
    """Full fine-tuning has no options: every backbone parameter and the head are trained."""

@dataclass(frozen=True)
class LinearConfig:
    """Linear probing: only the new head is trained, on features of the frozen backbone in eval mode."""

    solver: Literal["lbfgs", "adamw"] = doc(
        "lbfgs: full-batch logistic regression solved to convergence (Newton for small heads), L2 strength "
        "chosen on the suite's tuning split (VTAB-1k: train800 -> val200); adamw: the suite's AdamW recipe on the cached features", default="lbfgs")

METHODS.register(
    "full",
    MethodSpec(
        name="full", display="Full fine-tuning",
        config_cls=FullConfig,
        apply=Lazy("alore_bench.methods.basic:apply_full"),
        paper="full fine-tuning (baseline)",
        summary="all parameters trained",
    ),
)

METHODS.register(
    "linear",
    MethodSpec(
        name="linear", display="Linear probing",
        config_cls=LinearConfig,
        apply=Lazy("alore_bench.methods.basic:apply_linear"),
        paper="linear probing (baseline)",
        summary="frozen eval-mode backbone, head trained on cached features (L-BFGS by default)",
        train_mode=Lazy("alore_bench.methods.basic:eval_mode"),
        feature_probe=True,
    ),
)

@dataclass(frozen=True)
class BitFitConfig:
    """BitFit has no options: every bias term of the backbone and the head are trained."""

@dataclass(frozen=True)
class LNTuneConfig:
    """LN-Tune has no options: the affine weights and biases of every LayerNorm and the head are trained."""

METHODS.register("bitfit", MethodSpec(
    name="bitfit", display="BitFit", config_cls=BitFitConfig, apply=Lazy("alore_bench.methods.basic:apply_bitfit"),
    paper="Zaken et al. 2022, BitFit (ACL)", summary="bias terms only"))

METHODS.register("ln_tune", MethodSpec(
    name="ln_tune", display="LN-Tune", config_cls=LNTuneConfig, apply=Lazy("alore_bench.methods.basic:apply_ln_tune"),
    paper="Basu et al. 2024, Strong Baselines for Parameter-Efficient Few-Shot Fine-tuning (AAAI), LN-Tune", summary="LayerNorm affine parameters only"))
