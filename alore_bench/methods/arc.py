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

from dataclasses import dataclass

import torch
from torch import nn

from ..backbones.sites import SiteChoice, linear_sites
from ..config import doc
from ..errors import UserError
from .base import METHODS, MethodSpec, fold_input_affine, freeze, merge_modules, replace_submodule, train_head

PROJECTIONS_ATTR = "arc_projections"


@dataclass(frozen=True)
class ARCConfig:
    dim: int = doc("bottleneck width r of the shared projections (official: 50)", default=50)
    dropout: float = doc("dropout on the bottleneck during training (official: 0.1)", default=0.1)
    sites: SiteChoice = doc("attn: ARC_att (attention only); both: ARC (attention and MLP)", default="both")

    def validate(self) -> None:
        if self.dim < 1:
            raise UserError(f"arc dim must be at least 1, got {self.dim}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"arc dropout must lie in [0, 1), got {self.dropout}")


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


METHODS.register("arc", MethodSpec(
    name="arc", display="ARC", config_cls=ARCConfig, apply=apply_arc, merge=merge_arc, identity_at_init=False,
    paper="Dong et al. 2023, Efficient Adaptation of Large Vision Transformer via Adapter Re-Composing (NeurIPS)",
    summary="linear adapters with projections shared by all blocks, re-composed per block; mergeable"))
