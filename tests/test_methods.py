"""One table of checks that every registered method goes through (peft-style)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alore_bench.methods import METHODS
from alore_bench.methods.alore import ALoReLinear
from alore_bench.methods.base import head_parameter_count, total_parameter_count, trainable_parameter_count

from .conftest import make_tiny_vit


def _qkv_and_fc1(model: nn.Module):
    return [b.attn.qkv for b in model.blocks], [b.mlp.fc1 for b in model.blocks]


def expected_trainable(name: str, config, model: nn.Module) -> int:
    """Each method's budget from its paper's formula, computed on the unadapted model."""
    head = head_parameter_count(model)
    qkv, fc1 = _qkv_and_fc1(model)
    if name == "full":
        return total_parameter_count(model)
    if name == "linear":
        return head
    if name == "lora":
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        return sum(config.rank * (l.in_features + l.out_features) for l in layers) + head
    if name == "alore":
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        n = config.experts
        rules = {"shared": n**3, "per_site": n**3 * len(layers), "fixed": 0}[config.rules]
        return sum(2 * l.in_features * config.rank for l in layers) + rules + head
    raise AssertionError(f"no budget formula for method {name}: add one to this table")


ALL_METHODS = list(METHODS)


def _adapted(name: str, **opts):
    spec = METHODS.get(name)
    config = spec.config_from_dict(opts)
    base = make_tiny_vit()
    torch.manual_seed(1)
    adapted = spec.apply(copy.deepcopy(base), config)
    return spec, config, base, adapted


def _train_steps(model: nn.Module, steps: int, seed: int = 0):
    """A few AdamW steps on random data; returns names of trainable tensors that got non-zero grads."""
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
    got_grad = set()
    model.train()
    for _ in range(steps):
        x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 5, (8,))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        got_grad |= {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    return got_grad


def test_every_method_is_in_the_table():
    assert set(ALL_METHODS) >= {"alore", "lora", "full", "linear"}
    for name in ALL_METHODS:
        spec = METHODS.get(name)
        expected_trainable(name, spec.default_config(), make_tiny_vit())


@pytest.mark.parametrize("name", ALL_METHODS)
def test_output_shape_and_starts_equal_to_backbone(name):
    _spec, _config, base, adapted = _adapted(name)
    x = torch.randn(4, 3, 16, 16)
    base.eval(), adapted.eval()
    with torch.no_grad():
        out = adapted(x)
        assert out.shape == (4, 5)
        torch.testing.assert_close(out, base(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_trainable_count_matches_formula(name):
    spec, config, base, adapted = _adapted(name)
    assert trainable_parameter_count(adapted) == expected_trainable(name, config, base)


@pytest.mark.parametrize("name", ALL_METHODS)
def test_frozen_weights_unchanged_and_every_trainable_tensor_gets_gradient(name):
    _spec, _config, _base, adapted = _adapted(name)
    frozen = {n: p.detach().clone() for n, p in adapted.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    got_grad = _train_steps(adapted, steps=2)
    assert got_grad == trainable, f"no gradient within two steps: {sorted(trainable - got_grad)}"
    for n, p in adapted.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen weight {n} changed"


@pytest.mark.parametrize("name", [n for n in ALL_METHODS if METHODS.get(n).mergeable])
def test_merge_gives_plain_backbone_with_same_logits(name):
    spec, _config, base, adapted = _adapted(name)
    _train_steps(adapted, steps=3)
    adapted.eval()
    x = torch.randn(6, 3, 16, 16)
    with torch.no_grad():
        before = adapted(x)
        merged = spec.merge(adapted)
        after = merged(x)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-4)
    assert not torch.allclose(after, base.eval()(x), atol=1e-4), "training steps did not change the model"
    # A plain backbone: same module types, parameter names and count as the unadapted model.
    assert total_parameter_count(merged) == total_parameter_count(base)
    assert list(merged.state_dict()) == list(base.state_dict())
    assert {type(m) for m in merged.modules()} == {type(m) for m in base.modules()}


@pytest.mark.parametrize("name", ALL_METHODS)
def test_config_round_trips_through_json(name):
    import json

    spec = METHODS.get(name)
    config = spec.default_config()
    again = spec.config_from_dict(json.loads(json.dumps(spec.config_to_dict(config))))
    assert again == config
