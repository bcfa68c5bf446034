"""ARC, Adapter Re-Composing (Dong et al. 2023, NeurIPS), as DavidYanAnDe/ARC trains it.

A linear bottleneck adapter in front of the attention and the MLP of every block,
x -> x + dropout(x (P diag(lambda_l))) P^T + b_l, whose symmetric down/up projection P (d x r) is
shared by every block (one P for attention sites, one for MLP sites) and re-composed per block by
a rescaling vector lambda_l (r) and a bias b_l (d). `Model/ARC_new.py` (the model
`vtab_ARC_train.py` imports): Encoder.__init__ (lines 165-176; lambda zero at attention sites,
xavier-uniform at MLP sites, b zero), Encoder.forward (lines 178-200; the adapters act on the
layer norms' outputs), Transformer (lines 255-265; P xavier-uniform, used as P and P^T);
`Model/Model_Config.py` (adapter_dim 50); `vtab_ARC_train.py` (--adapt_drop 0.1). Linear, so it
merges into qkv / fc1.
"""

from __future__ import annotations


import torch
from torch import nn

from ..backbones.sites import linear_sites
from .modules import fold_input_affine, freeze, merge_modules, replace_submodule, train_head
from .specs.arc import ARCConfig  # noqa: F401  (importable from here too)

PROJECTIONS_ATTR = "arc_projections"


class ARCLinear(nn.Module):
    """base(x + dropout(x (P diag(lambda))) P^T + b) with the shared P of its kind."""

    def __init__(self, base: nn.Linear, projections: nn.ParameterDict, kind: str, config: ARCConfig,
                 key: str = ""):
        super().__init__()
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.base, self.kind, self.key = base, kind, key or kind
        object.__setattr__(self, "_projections", projections)  # registered once, on the model
        self.rescale = nn.Parameter(torch.zeros(1, config.dim, **factory))
        self.bias = nn.Parameter(torch.zeros(base.in_features, **factory))
        if kind == "mlp" and not self.rescale.is_meta:
            nn.init.xavier_uniform_(self.rescale)
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    @property
    def projection(self) -> torch.Tensor:
        return self._projections[self.key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.projection
        return self.base(x + self.dropout(x @ (p * self.rescale)) @ p.T + self.bias)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        p = self.projection.double()
        # x' = (I + P diag(lambda) P^T) x + b; the matrix is symmetric.
        matrix = torch.eye(p.shape[0], dtype=torch.float64, device=p.device) + (p * self.rescale.double()) @ p.T
        return fold_input_affine(self.base, matrix, self.bias.double())


def apply_arc(model: nn.Module, config: ARCConfig) -> nn.Module:
    sites = linear_sites(model, config.sites)
    freeze(model)
    factory = dict(device=sites[0][1].weight.device, dtype=sites[0][1].weight.dtype)
    # One shared projection per site kind (the paper's ViT); a kind whose width changes (Swin and
    # ConvNeXt stages) gets one per width, named kind_width.
    widths = {kind: sorted({linear.in_features for _n, linear, k in sites if k == kind}) for _n, _l, kind in sites}
    def key(kind: str, width: int) -> str:
        return kind if len(widths[kind]) == 1 else f"{kind}_{width}"

    projections = nn.ParameterDict({key(kind, d): nn.Parameter(torch.empty(d, config.dim, **factory))
                                    for kind in sorted(widths) for d in widths[kind]})
    for p in projections.values():
        if not p.is_meta:
            nn.init.xavier_uniform_(p)
    model.add_module(PROJECTIONS_ATTR, projections)
    for name, linear, kind in sites:
        replace_submodule(model, name, ARCLinear(linear, projections, kind, config, key(kind, linear.in_features)))
    train_head(model)
    return model


def merge_arc(model: nn.Module) -> nn.Module:
    merge_modules(model, ARCLinear, "arc")
    delattr(model, PROJECTIONS_ATTR)
    return model


