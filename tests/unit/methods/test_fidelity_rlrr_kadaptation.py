"""RLRR's residual dropout and KAdaptation's factorised rules and bias, pinned against their
official code (zstarN70/RLRR models/networks.py; eric-ai-lab/PEViT vision_benchmark/evaluation/model.py)."""

from __future__ import annotations

import pytest
import torch
from timm.layers import DropPath
from torch import nn

from alore_bench.methods import METHODS
from alore_bench.params import build_and_count, vit_b16_trainable_without_head

from tests.unit.methods.test_fidelity import adapted, randomise, tiny


def test_rlrr_drops_residual_branches_element_wise_at_the_stochastic_depth_rates():
    model = adapted("rlrr", model=tiny(drop_path_rate=0.3))
    assert not any(isinstance(m, DropPath) for m in model.modules())
    rates = torch.linspace(0, 0.3, len(model.blocks)).tolist()  # networks.py line 217
    for block, rate in zip(model.blocks, rates):
        for branch in (block.drop_path1, block.drop_path2):
            if rate == 0:
                assert isinstance(branch, nn.Identity)
            else:
                assert type(branch) is nn.Dropout and branch.p == pytest.approx(rate)
    # Element-wise: within one sample some entries are dropped and others kept (DropPath keeps or
    # drops a whole sample).
    last = model.blocks[-1].drop_path1.train()
    out = last(torch.ones(4, 50, 64))
    per_sample_kept = (out != 0).float().mean(dim=(1, 2))
    assert ((per_sample_kept > 0) & (per_sample_kept < 1)).all()
    timm_style = adapted("rlrr", model=tiny(drop_path_rate=0.3), residual_drop="drop_path")
    assert any(isinstance(m, DropPath) for m in timm_style.modules())


def test_kadaptation_has_rank_one_shared_rules_and_a_bias_per_layer_as_pevit():
    model = adapted("kadaptation", model=tiny(embed_dim=64, num_heads=2), experts=4)
    rules = model.kadaptation_rules
    for part in ("q", "v"):
        left, right = rules[part].left, rules[part].right
        assert left.shape == (4, 4, 1) and right.shape == (4, 1, 4)
        for factor in (left, right):  # U(-0.01, 0.01)
            assert factor.abs().max() <= 0.01 and factor.abs().max() > 0.005
        torch.testing.assert_close(rules[part].weight, torch.bmm(left, right))
    attn = model.blocks[0].attn
    q, v = attn.qkv.q, attn.qkv.v
    assert q._bias is v._bias is attn.qkv.kadaptation_bias  # one bias, added to both updates
    assert torch.count_nonzero(attn.qkv.kadaptation_bias) == 0
    assert q.site.scale == 160.0  # 5 * lora_attn_alpha / lora_attn_dim
    assert METHODS.get("kadaptation").starts_as_backbone(METHODS.get("kadaptation").default_config())


def test_kadaptation_trains_its_rules_and_bias_and_merges_exactly():
    model = adapted("kadaptation", model=tiny(embed_dim=64, num_heads=2), experts=4)
    model.train()
    x = torch.randn(2, 3, 16, 16)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trained, lr=0.1)
    for _ in range(2):  # the rules' gradient is zero while one fast factor is: the first step moves it
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
    for name in ("kadaptation_rules.q.left", "kadaptation_rules.v.right", "blocks.0.attn.qkv.kadaptation_bias"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    randomise(model)
    model.eval()
    with torch.no_grad():
        before = model(x)
        merged = METHODS.get("kadaptation").merge(model)
        torch.testing.assert_close(merged(x), before, rtol=1e-5, atol=1e-5)
    assert all(type(b.attn.qkv) is nn.Linear for b in merged.blocks)
    assert not any("kadaptation" in n for n, _p in merged.named_parameters())


def test_kadaptation_budget_is_pevits_formula_and_the_dense_variant_stays_an_option():
    assert vit_b16_trainable_without_head("kadaptation") == 50_176  # about 50k, as PEViT's formula
    spec = METHODS.get("kadaptation")
    dense = build_and_count("kadaptation", config=spec.config_from_dict({"rules": "full", "bias": False}))
    assert dense == 12 * 2 * 2 * 768 + 2 * 32**3 == 102_400
