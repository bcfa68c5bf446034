"""SSF: scale and shift the features after each operation (Lian et al. 2022); mergeable."""

from __future__ import annotations


import torch
from timm.layers import LayerNorm2d
from torch import nn

from ..errors import UserError
from .modules import freeze, merge_modules, replace_submodule, train_head
from .specs.ssf import SSFConfig  # noqa: F401  (importable from here too)


class ScaleShift(nn.Module):
    """y = inner(x) * gamma + beta along the output channel dimension (last, or 1 for convolutions)."""

    def __init__(self, inner: nn.Module, channels: int, channel_dim: int, init_std: float):
        super().__init__()
        self.inner, self.channel_dim = inner, channel_dim
        factory = dict(device=inner.weight.device, dtype=inner.weight.dtype)
        self.gamma = nn.Parameter(torch.ones(channels, **factory))
        self.beta = nn.Parameter(torch.zeros(channels, **factory))
        if init_std > 0 and not self.gamma.is_meta:
            with torch.no_grad():
                self.gamma.normal_(1.0, init_std)
                self.beta.normal_(0.0, init_std)

    def _view(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        if self.channel_dim == -1:
            return t
        return t.view(-1, *([1] * (ndim - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y * self._view(self.gamma, y.ndim) + self._view(self.beta, y.ndim)

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The inner module with gamma and beta folded into its weight (rows) and bias."""
        inner = self.inner
        shape = (-1,) + (1,) * (inner.weight.ndim - 1)
        inner.weight.mul_(self.gamma.view(shape))
        if inner.bias is None:
            inner.bias = nn.Parameter(torch.zeros_like(self.beta), requires_grad=False)
        inner.bias.mul_(self.gamma).add_(self.beta)
        return inner


def ssf_targets(model: nn.Module):
    """Every Linear and affine LayerNorm of the backbone (not the head), and the patch projection."""
    head = model.get_classifier()
    head_ids = {id(m) for m in head.modules()}
    for name, module in model.named_modules():
        if id(module) in head_ids:
            continue
        if isinstance(module, nn.Linear):
            yield name, module, module.out_features, -1
        elif isinstance(module, LayerNorm2d) and module.elementwise_affine:  # normalises NCHW maps
            yield name, module, module.normalized_shape[0], 1
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            yield name, module, module.normalized_shape[0], -1
        elif isinstance(module, nn.Conv2d):
            # The patch projection (ViT, Swin, Mixer); in ConvNeXt every convolution (stem,
            # downsampling, depthwise), as SSF's ConvNeXt code scales and shifts after each operation.
            yield name, module, module.out_channels, 1


def apply_ssf(model: nn.Module, config: SSFConfig) -> nn.Module:
    targets = list(ssf_targets(model))
    if not targets:
        raise UserError(f"ssf: no Linear or LayerNorm found in {type(model).__name__}")
    freeze(model)
    for name, module, channels, channel_dim in targets:
        replace_submodule(model, name, ScaleShift(module, channels, channel_dim, config.init_std))
    train_head(model)
    return model


def merge_ssf(model: nn.Module) -> nn.Module:
    return merge_modules(model, ScaleShift, "ssf")


