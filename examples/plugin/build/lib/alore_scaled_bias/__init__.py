"""Scaled bias: every linear layer of the frozen backbone gets a trainable per-channel scale g
(from 1) and shift t (from 0) of its bias, b -> g * b + t. Starts as the backbone; merges into
the bias exactly. An example of an alore-bench plugin: a config dataclass, `apply`, `merge` and
the budget formula, registered through the `alore_bench.methods` entry point."""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alore_bench.methods.base import MethodSpec, freeze, merge_modules, replace_submodule, train_head

SUITE_FILE = Path(__file__).with_name("shapes2.toml")


@dataclass(frozen=True)
class ScaledBiasConfig:
    train_scale: bool = True  # False: the shift alone (BitFit-like, through a new parameter)


class ScaledBiasLinear(nn.Module):
    def __init__(self, base: nn.Linear, train_scale: bool):
        super().__init__()
        self.base = base
        self.scale = nn.Parameter(torch.ones(base.out_features), requires_grad=train_scale)
        self.shift = nn.Parameter(torch.zeros(base.out_features))

    def forward(self, x):
        return nn.functional.linear(x, self.base.weight, self.base.bias * self.scale + self.shift)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        self.base.bias.copy_(self.base.bias * self.scale + self.shift)
        return self.base


def targets(model: nn.Module):
    head = {id(m) for m in model.get_classifier().modules()}
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m.bias is not None and id(m) not in head]


def apply(model: nn.Module, config: ScaledBiasConfig) -> nn.Module:
    freeze(model)
    for name, linear in targets(model):
        replace_submodule(model, name, ScaledBiasLinear(linear, config.train_scale))
    train_head(model)
    return model


def budget(model: nn.Module, config: ScaledBiasConfig) -> int:
    return sum((2 if config.train_scale else 1) * linear.out_features for _name, linear in targets(model))


METHOD = MethodSpec(
    name="scaled_bias", display="Scaled bias", config_cls=ScaledBiasConfig, apply=apply,
    merge=lambda model: merge_modules(model, ScaledBiasLinear, "scaled_bias"), budget=budget,
    paper="an alore-bench plugin example", summary="per-channel scale and shift of every linear bias; mergeable")
