"""The two reference points of every PETL table: full fine-tuning and linear probing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, freeze, train_head


@dataclass(frozen=True)
class FullConfig:
    """Full fine-tuning has no options: every backbone parameter and the head are trained."""


@dataclass(frozen=True)
class LinearConfig:
    """Linear probing: only the new head is trained, on features of the frozen backbone in eval mode."""

    solver: Literal["lbfgs", "adamw"] = doc(
        "lbfgs: full-batch logistic regression, L2 strength chosen on the suite's tuning split (VTAB-1k: "
        "train800 -> val200); adamw: the suite's AdamW recipe on the cached features", default="lbfgs")


def apply_full(model: nn.Module, config: FullConfig) -> nn.Module:
    model.requires_grad_(True)
    return model


def apply_linear(model: nn.Module, config: LinearConfig) -> nn.Module:
    freeze(model)
    train_head(model)
    return model


METHODS.register(
    "full",
    MethodSpec(
        name="full", display="Full fine-tuning",
        config_cls=FullConfig,
        apply=apply_full,
        paper="full fine-tuning (baseline)",
        summary="all parameters trained",
    ),
)
METHODS.register(
    "linear",
    MethodSpec(
        name="linear", display="Linear probing",
        config_cls=LinearConfig,
        apply=apply_linear,
        paper="linear probing (baseline)",
        summary="frozen eval-mode backbone, head trained on cached features (L-BFGS by default)",
        train_mode=nn.Module.eval,
        feature_probe=True,
    ),
)


@dataclass(frozen=True)
class BitFitConfig:
    """BitFit has no options: every bias term of the backbone and the head are trained."""


@dataclass(frozen=True)
class LNTuneConfig:
    """LN-Tune has no options: the affine weights and biases of every LayerNorm and the head are trained."""


def _train_only(model: nn.Module, parts: list, method: str, what: str) -> nn.Module:
    """Freeze everything, then train `parts` (parameters or modules) and the head; none is an error."""
    if not parts:
        raise UserError(f"{method}: {type(model).__name__} has no {what}")
    freeze(model)
    for part in parts:
        part.requires_grad_(True)
    train_head(model)
    return model


def apply_bitfit(model: nn.Module, config: BitFitConfig) -> nn.Module:
    biases = [m.bias for m in model.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)]
    return _train_only(model, biases, "bitfit", "bias terms")


def apply_ln_tune(model: nn.Module, config: LNTuneConfig) -> nn.Module:
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm) and m.elementwise_affine]
    return _train_only(model, norms, "ln_tune", "affine LayerNorm")


METHODS.register("bitfit", MethodSpec(
    name="bitfit", display="BitFit", config_cls=BitFitConfig, apply=apply_bitfit,
    paper="Zaken et al. 2022, BitFit (ACL)", summary="bias terms only"))
METHODS.register("ln_tune", MethodSpec(
    name="ln_tune", display="LN-Tune", config_cls=LNTuneConfig, apply=apply_ln_tune,
    paper="Basu et al. 2024, Strong Baselines for Parameter-Efficient Few-Shot Fine-tuning (AAAI), LN-Tune", summary="LayerNorm affine parameters only"))
