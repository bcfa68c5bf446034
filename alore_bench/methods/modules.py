"""The torch side of the method contract: freezing, parameter counts, layer surgery, merging and
adapter files, shared by the method implementations (and plugins, through `methods.base`)."""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch
from torch import nn

from ..config import config_to_dict


def eval_except(*kinds: type) -> Callable[[nn.Module], None]:
    """A train_mode that keeps the whole model in eval mode except modules of the given types
    (e.g. the method's own dropout), which train."""

    def train_mode(model: nn.Module) -> None:
        model.eval()
        for module in model.modules():
            if isinstance(module, kinds):
                module.train()

    return train_mode


def freeze(model: nn.Module) -> None:
    model.requires_grad_(False)


def train_head(model: nn.Module) -> None:
    """Make the classifier head trainable (it is always newly initialised and trained)."""
    model.get_classifier().requires_grad_(True)


def head_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.get_classifier().parameters())


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def total_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def replace_submodule(model: nn.Module, qualified_name: str, new: nn.Module) -> None:
    parent_name, _, attr = qualified_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


@torch.no_grad()
def copy_linear(base: nn.Linear, weight: torch.Tensor) -> nn.Linear:
    """A plain nn.Linear like `base` holding `weight` (and base's bias)."""
    merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                       device=base.weight.device, dtype=base.weight.dtype)
    merged.weight.copy_(weight.to(base.weight.dtype))
    if base.bias is not None:
        merged.bias.copy_(base.bias)
    merged.requires_grad_(base.weight.requires_grad)
    return merged


@torch.no_grad()
def fold_input_affine(base: nn.Linear, matrix: torch.Tensor, offset: torch.Tensor) -> nn.Linear:
    """A plain nn.Linear computing base(matrix @ x + offset): weight W M, bias W offset + b (for
    sequential adapters that are affine in x; matrix and offset in float64)."""
    weight = base.weight.double()
    merged = copy_linear(base, weight @ matrix)
    bias = weight @ offset + (base.bias.double() if base.bias is not None else 0)
    if merged.bias is None:
        merged.bias = nn.Parameter(torch.zeros(merged.out_features, dtype=merged.weight.dtype,
                                               device=merged.weight.device), requires_grad=False)
    merged.bias.copy_(bias.to(merged.bias.dtype))
    return merged


def trainable_state(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The method's own parameters and the head: everything a run trains."""
    return {name: p.detach().contiguous().clone() for name, p in model.named_parameters() if p.requires_grad}


def save_adapter(model: nn.Module, path, method: str, config: Any) -> None:
    """Save what the method trained (safetensors), with the method and its config as metadata."""
    import json
    import os
    from pathlib import Path

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(trainable_state(model), str(tmp),
              metadata={"method": method, "config": json.dumps(config_to_dict(config), sort_keys=True)})
    os.replace(tmp, path)


def load_adapter(model: nn.Module, path) -> Dict[str, str]:
    """Load saved trainable weights into a model adapted with the same method and config; every
    trainable tensor must be in the file and nothing else. Returns the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(str(path))
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ValueError(f"{path}: adapter weights do not fit this model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); apply the same method and config first")
    model.load_state_dict(state, strict=False)
    with safe_open(str(path), "pt") as handle:
        return dict(handle.metadata() or {})


@torch.no_grad()
def merge_modules(model: nn.Module, wrapper: type, method: str) -> nn.Module:
    """Replace every `wrapper` module by the plain module its `merged()` returns (re-parameterisation)."""
    names = [name for name, module in model.named_modules() if isinstance(module, wrapper)]
    if not names:
        raise ValueError(f"merge: the model has no {method} layers ({wrapper.__name__})")
    for name in names:
        replace_submodule(model, name, model.get_submodule(name).merged())
    return model
