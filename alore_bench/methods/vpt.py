"""Visual Prompt Tuning (Jia et al. 2022): learnable prompt tokens after the class token, at the
input only (shallow) or replaced before every block (deep); removed before the head.

As KMnP/vpt trains it: prompt dropout 0.0 (`src/configs/config.py` line 74,
_C.MODEL.PROMPT.DROPOUT), uniform init with bound sqrt(6 / (3 * patch^2 + dim))
(`src/models/vit_prompt/vit.py` lines 56-70, PromptedTransformer.__init__), and the frozen encoder
and embeddings kept in eval mode during training (same file, lines 89-96,
PromptedTransformer.train), so the backbone's drop-path is off."""

from __future__ import annotations

import math
from functools import reduce
from operator import mul

import torch
from torch import nn

from ..errors import UserError
from .modules import eval_except, freeze, train_head
from .specs.vpt import VPTConfig  # noqa: F401  (importable from here too)


class PromptDropout(nn.Dropout):
    """Dropout on the prompts: the one module that trains while the frozen backbone stays in eval mode."""


class PromptedBlocks(nn.Module):
    """Runs the ViT's blocks with prompt tokens inserted after the prefix (class) tokens; the
    output has the original token count, so the norm and head see what they always saw."""

    def __init__(self, blocks: nn.Sequential, prefix: int, prompts: nn.Parameter, deep: bool, dropout: float):
        super().__init__()
        self.blocks, self.prefix, self.deep = blocks, prefix, deep
        self.prompts = prompts  # (layers, length, dim)
        self.dropout = PromptDropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = self.prompts.shape[1]
        batch = x.shape[0]
        head, tail = x[:, :self.prefix], x[:, self.prefix:]
        for i, block in enumerate(self.blocks):
            if i == 0 or self.deep:
                prompt = self.dropout(self.prompts[i if self.deep else 0]).expand(batch, -1, -1).to(x.dtype)
                if i == 0:
                    x = torch.cat([head, prompt, tail], dim=1)
                else:
                    x = torch.cat([x[:, :self.prefix], prompt, x[:, self.prefix + length:]], dim=1)
            x = block(x)
        return torch.cat([x[:, :self.prefix], x[:, self.prefix + length:]], dim=1)


def _apply_vpt(model: nn.Module, config: VPTConfig, deep: bool) -> nn.Module:
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential) or not hasattr(model, "num_prefix_tokens"):
        raise UserError(f"VPT needs a ViT with a `blocks` sequence and prefix tokens; {type(model).__name__} has none")
    freeze(model)
    dim = model.embed_dim
    layers = len(blocks) if deep else 1
    reference = model.pos_embed if getattr(model, "pos_embed", None) is not None else next(model.parameters())
    prompts = nn.Parameter(torch.empty(layers, config.length, dim, device=reference.device, dtype=reference.dtype))
    if not prompts.is_meta:
        # VPT's initialisation: uniform with the Xavier bound of the patch projection.
        patch = reduce(mul, model.patch_embed.patch_size, 1)
        bound = math.sqrt(6.0 / float(3 * patch + dim))
        nn.init.uniform_(prompts, -bound, bound)
    model.blocks = PromptedBlocks(blocks, model.num_prefix_tokens, prompts, deep, config.dropout)
    train_head(model)
    return model


def apply_vpt_shallow(model: nn.Module, config: VPTConfig) -> nn.Module:
    return _apply_vpt(model, config, deep=False)


def apply_vpt_deep(model: nn.Module, config: VPTConfig) -> nn.Module:
    return _apply_vpt(model, config, deep=True)


# VPT's official training keeps the frozen backbone in eval mode; only the prompts' dropout trains.
train_prompts_only = eval_except(PromptDropout)
