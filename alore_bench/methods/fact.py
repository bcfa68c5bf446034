"""FacT (Jie & Deng 2023): the updates of all ViT weights as one factorised tensor, in its two
published forms, as JieShibo/PETL-ViT `FacT/fact_tt.py` and `FacT/fact_tk.py` train them.

Every d x d weight slot of block l (q, k, v, proj, the 4 d x d chunks of fc1 and of fc2) gets
dW = s * V C U with U (r x d, input) and V (d x r, output, zero at init) shared by the model and
an r x r core C per slot, applied as x -> V dropout(C (U x)):

- fact_tt (tensor-train): an independent core per slot, each initialised like the official
  `nn.Linear(dim, dim)` / `Linear(dim, 4 dim)` / `Linear(4 dim, dim)` (uniform, bound
  1 / sqrt(fan in)); dropout 0.1 after the core (fact_tt.py set_FacT and fact_forward_attn/_mlp).
- fact_tk (Tucker): every core is C_j = T x_3 P[:, j] from one shared r x r x r tensor T and an
  r x (12 * depth) slot factor P, both xavier-uniform (fact_tk.py set_FacT); fc1's and fc2's four
  cores are read from the shared tensor with the official code's reshapes (fact_forward_mlp).

U is an `nn.Linear(768, dim)` in the official code, so it gets that layer's default init. The
update is linear in the weights, so both forms merge exactly.

Other families (an extension: the paper is ViT-only): Swin and ConvNeXt change width between
stages, so each width gets its own factors (one FacT tensor per stage); blocks without attention
(ConvNeXt, Mixer) have only the MLP slots; Mixer's token MLPs, whose sizes are token counts, are
left out.
"""

from __future__ import annotations

import math
from typing import List

import torch
from timm.layers import Mlp
from torch import nn

from ..backbones.sites import ATTENTION_TYPES, token_mlps

from ..errors import UserError
from .modules import copy_linear, freeze, merge_modules, replace_submodule, train_head
from .specs.fact import FacTConfig, FacTTKConfig  # noqa: F401  (importable from here too)

FACTORS_ATTR = "fact_factors"


class FacTFactors(nn.Module):
    """The model-wide parts: U (r x d, the official FacTu.weight), V (d x r, FacTv.weight, zero),
    and for the Tucker form the core tensor T (r x r x r) and slot factor P (r x slots)."""

    def __init__(self, dim: int, rank: int, slots: int, tucker: bool, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.u = nn.Parameter(torch.empty(rank, dim, **factory))
        self.v = nn.Parameter(torch.zeros(dim, rank, **factory))
        self.tensor = nn.Parameter(torch.empty(rank, rank, rank, **factory)) if tucker else None
        self.slot_factor = nn.Parameter(torch.empty(rank, slots, **factory)) if tucker else None
        if not self.u.is_meta:
            nn.init.kaiming_uniform_(self.u, a=math.sqrt(5))  # nn.Linear(768, dim)'s default init
            if tucker:
                nn.init.xavier_uniform_(self.tensor)
                nn.init.xavier_uniform_(self.slot_factor)

    def tucker_cores(self, first: int, count: int) -> torch.Tensor:
        """(r, r, count): the official `FacTc @ FacTp[:, first:first + count]`."""
        return self.tensor @ self.slot_factor[:, first:first + count]


class FacTLinear(nn.Module):
    """A frozen Linear tiled by out_slots x in_slots blocks of d x d; y = base(x) + s * delta where
    each block's delta is V dropout(C U x). The cores C, (out_slots, in_slots, r, r) with each r x r
    matrix in nn.Linear's (out, in) convention, are its own (`cores`, tensor-train) or read from
    the shared Tucker factors at slot `offset`."""

    def __init__(self, base: nn.Linear, factors: FacTFactors, dim: int, scale: float, dropout: float,
                 kind: str, offset: int, cores: "TTCores | None"):
        super().__init__()
        if base.in_features % dim or base.out_features % dim:
            raise UserError(f"FacT needs layer sizes that are multiples of the width {dim}, got "
                            f"{base.in_features} -> {base.out_features}")
        self.base, self.dim, self.scale = base, dim, scale
        self.in_slots, self.out_slots = base.in_features // dim, base.out_features // dim
        object.__setattr__(self, "_factors", factors)  # registered once, on the model
        self.kind, self.offset, self.cores = kind, offset, cores
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = self._factors.u, self._factors.v
        low = x.reshape(*x.shape[:-1], self.in_slots, self.dim) @ u.T  # (..., in, r)
        mixed = self.dropout(torch.einsum("...ir,oisr->...os", low, self.core_matrices()))  # (..., out, r)
        delta = (mixed @ v.T).reshape(*x.shape[:-1], -1)  # (..., out * d)
        return self.base(x) + self.scale * delta

    def core_matrices(self) -> torch.Tensor:
        if self.cores is not None:
            return self.cores.weight
        chunks = max(self.in_slots, self.out_slots) if self.kind in ("fc1", "fc2") else 0
        return tk_cores(self._factors, self.offset, self.kind, chunks)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        u, v = self._factors.u.double(), self._factors.v.double()
        blocks = torch.einsum("ds,oisr,re->oide", v, self.core_matrices().double(), u)  # (out, in, d, d)
        delta = blocks.permute(0, 2, 1, 3).reshape(self.base.out_features, self.base.in_features)
        return copy_linear(self.base, self.base.weight.double() + self.scale * delta)


class TTCores(nn.Module):
    """fact_tt: an independent core per slot, initialised as the official per-layer nn.Linear."""

    def __init__(self, out_slots: int, in_slots: int, rank: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_slots, in_slots, rank, rank, device=device, dtype=dtype))
        if not self.weight.is_meta:
            # Official: Linear(r, r) for q/k/v/proj, Linear(r, 4r) for fc1, Linear(4r, r) for fc2:
            # uniform with bound 1 / sqrt(fan in), fan in = r * in_slots.
            bound = 1.0 / math.sqrt(rank * in_slots)
            nn.init.uniform_(self.weight, -bound, bound)


def tk_cores(factors: FacTFactors, first: int, kind: str, chunks: int) -> torch.Tensor:
    """fact_tk's cores of one layer, read from the shared tensor as fact_forward_attn/_mlp do
    (`chunks` = MLP hidden width / d, 4 in every ViT the paper uses)."""
    if kind in ("qkv", "proj"):  # q, k, v (fused qkv: 3 out slots) or proj (1)
        c = factors.tucker_cores(first, 4)  # (r, r, 4), applied as u @ c[:, :, k]: transpose
        picked = c[:, :, :3] if kind == "qkv" else c[:, :, 3:4]
        return picked.permute(2, 1, 0).unsqueeze(1)  # (out, 1, r, r)
    c = factors.tucker_cores(first, 2 * chunks)
    r = c.shape[0]
    if kind == "fc1":  # h = u @ c[:, :, :4].reshape(r, 4r), then viewed as (4, r)
        return c[:, :, :chunks].reshape(r, chunks * r).T.reshape(chunks, r, r).unsqueeze(1)  # (4, 1, r, r)
    # fc2: out = concat_s(u_s) @ c[:, :, 4:].reshape(r, 4r).T
    return c[:, :, chunks:].reshape(r, chunks, r).permute(1, 0, 2).unsqueeze(0)  # (1, 4, r, r)


def fact_sites(model: nn.Module) -> List[tuple]:
    """(width, block index within that width, qualified name, kind) for q/k/v (fused qkv), proj,
    fc1, fc2 of every block, in model order; a block starts at its attention (or, without
    attention, at its channel MLP)."""
    tokens = token_mlps(model)
    sites, current = [], {}  # width -> (block index, whether that block's MLP was seen)
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, ATTENTION_TYPES) and isinstance(module.qkv, nn.Linear):
            width = module.qkv.in_features
            index = current.get(width, (-1, False))[0] + 1
            current[width] = (index, False)
            sites += [(width, index, f"{prefix}qkv", "qkv"), (width, index, f"{prefix}proj", "proj")]
        elif isinstance(module, Mlp) and id(module) not in tokens:
            width = module.fc1.in_features
            index, seen_mlp = current.get(width, (-1, True))
            index += 1 if seen_mlp else 0
            current[width] = (index, True)
            sites += [(width, index, f"{prefix}fc1", "fc1"), (width, index, f"{prefix}fc2", "fc2")]
    if not sites:
        raise UserError(f"FacT found no attention or MLP blocks in {type(model).__name__}")
    return sites


def _apply_fact(model: nn.Module, config: FacTConfig, tucker: bool) -> nn.Module:
    sites = fact_sites(model)
    freeze(model)
    first = model.get_submodule(sites[0][2])
    factory = dict(device=first.weight.device, dtype=first.weight.dtype)
    widths = sorted({width for width, *_rest in sites}, key=[w for w, *_r in sites].index)
    owners = {}
    for dim in widths:
        group = [site for site in sites if site[0] == dim]
        attention = 4 if any(kind == "qkv" for *_r, kind in group) else 0
        chunks = model.get_submodule(next(n for _w, _b, n, k in group if k == "fc1")).out_features // dim
        per_block = attention + 2 * chunks  # q, k, v, proj, then fc1's and fc2's d x d chunks (12 in ViT-B)
        factors = FacTFactors(dim, config.rank, per_block * (group[-1][1] + 1), tucker, **factory)
        owners[dim] = factors
        for _width, block, name, kind in group:
            base = model.get_submodule(name)
            offset = per_block * block + (0 if kind in ("qkv", "proj") else attention)
            cores = None if tucker else TTCores(base.out_features // dim, base.in_features // dim, config.rank, **factory)
            replace_submodule(model, name, FacTLinear(base, factors, dim, config.scale, config.dropout, kind, offset, cores))
    # One width (ViT, Mixer): the factors as before; several (Swin, ConvNeXt): one set per stage width.
    model.add_module(FACTORS_ATTR, owners[widths[0]] if len(widths) == 1 else
                     nn.ModuleDict({f"width{dim}": f for dim, f in owners.items()}))
    train_head(model)
    return model


def apply_fact_tt(model: nn.Module, config: FacTConfig) -> nn.Module:
    return _apply_fact(model, config, tucker=False)


def apply_fact_tk(model: nn.Module, config: FacTTKConfig) -> nn.Module:
    return _apply_fact(model, config, tucker=True)


def merge_fact(model: nn.Module) -> nn.Module:
    merge_modules(model, FacTLinear, "fact")
    delattr(model, FACTORS_ATTR)
    return model


