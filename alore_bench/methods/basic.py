"""The two reference points of every PETL table: full fine-tuning and linear probing."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .base import METHODS, MethodSpec, freeze, train_head


@dataclass(frozen=True)
class FullConfig:
    """Full fine-tuning has no options: every backbone parameter and the head are trained."""


@dataclass(frozen=True)
class LinearConfig:
    """Linear probing has no options: only the new classifier head is trained."""


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
        name="full",
        config_cls=FullConfig,
        apply=apply_full,
        paper="full fine-tuning (baseline)",
        summary="all parameters trained",
    ),
)
METHODS.register(
    "linear",
    MethodSpec(
        name="linear",
        config_cls=LinearConfig,
        apply=apply_linear,
        paper="linear probing (baseline)",
        summary="frozen backbone, only the classifier head trained",
    ),
)
