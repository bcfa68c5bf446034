"""The two reference points of every PETL table: full fine-tuning and linear probing."""

from __future__ import annotations


from torch import nn

from ..errors import UserError
from .modules import freeze, train_head
from .specs.basic import BitFitConfig, FullConfig, LinearConfig, LNTuneConfig  # noqa: F401  (importable from here too)


def eval_mode(model: nn.Module) -> None:
    """The probe's training mode: the frozen backbone stays in eval mode."""
    model.eval()


def apply_full(model: nn.Module, config: FullConfig) -> nn.Module:
    model.requires_grad_(True)
    return model


def apply_linear(model: nn.Module, config: LinearConfig) -> nn.Module:
    freeze(model)
    train_head(model)
    return model


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


