"""One table of checks that every registered method goes through (peft-style)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alore_bench import conformance
from alore_bench.errors import UserError
from alore_bench.methods import METHODS
from alore_bench.methods.base import head_parameter_count, total_parameter_count, trainable_parameter_count

from tests.support.models import make_tiny_vit


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
    if name == "lora":  # fused qkv: one (d + 3d) r pair; separate q, k, v: (d + d) r each
        parts = len(config.targets.split(",")) if config.targets != "qkv" else 1
        attn = sum(config.rank * (l.in_features * parts + l.out_features) for l in qkv)
        mlp = sum(config.rank * (l.in_features + l.out_features) for l in fc1)
        return {"attn": attn, "mlp": mlp, "both": attn + mlp}[config.sites] + head
    if name == "alore":
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        n = config.experts
        rules = {"shared": n**3, "per_site": n**3 * len(layers), "fixed": 0}[config.rules]
        return sum(2 * l.in_features * config.rank for l in layers) + rules + head
    d, depth = model.embed_dim, len(model.blocks)
    if name == "bitfit":  # every bias: qkv, proj, fc1, fc2, two norms per block; patch projection, final norm
        per_block = 3 * d + d + fc1[0].out_features + d + 2 * d
        return depth * per_block + d + d + head
    if name == "ln_tune":
        return (2 * depth + 1) * 2 * d + head
    if name == "adapter":  # down d x b + b, up b x d + d; one per block (NOAH) or two (Houlsby)
        per_block = 2 if config.placement == "houlsby" else 1
        return per_block * depth * (2 * d * config.bottleneck + config.bottleneck + d) + head
    if name == "adaptformer":
        return depth * (2 * d * config.bottleneck + config.bottleneck + d) + head
    if name == "ssf":  # gamma and beta after qkv, proj, fc1, fc2, norm1, norm2, patch projection, final norm
        per_block = 3 * d + d + fc1[0].out_features + d + 2 * d
        return 2 * (depth * per_block + d + d) + head
    if name == "repadapter":
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        r, g = config.bottleneck, config.groups
        return sum(l.in_features * r + r * l.in_features // g + (r + l.in_features if config.bias else 0)
                   for l in layers) + head
    if name == "vpt_shallow":
        return config.length * d + head
    if name == "vpt_deep":
        return depth * config.length * d + head
    if name == "fact_tt":  # shared U, V (d x r) + an r x r core per d x d slot: qkv 3, proj 1, fc1 and fc2 4 each
        slots = depth * (3 + 1 + fc1[0].out_features // d + fc1[0].out_features // d)
        return 2 * d * config.rank + slots * config.rank**2 + head
    if name == "fact_tk":  # shared U, V (d x r), core tensor r^3 and slot factor r x (slots per block)
        slots = depth * (4 + 2 * fc1[0].out_features // d)
        return 2 * d * config.rank + config.rank**3 + config.rank * slots + head
    if name == "arc":  # shared P (d x r) per site kind, per site lambda (r) and bias (d)
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        kinds = {"attn": 1, "mlp": 1, "both": 2}[config.sites]
        return kinds * d * config.dim + len(layers) * (config.dim + d) + head
    if name == "rlrr":  # per block linear: s_in (in) + s_out (out) + shift (out); SSF pairs after 2 norms
        hidden = fc1[0].out_features
        per_block = 3 * (d + 2 * d) + (d + 2 * d) + (d + 2 * hidden) + (hidden + 2 * d) + 2 * 2 * d
        return depth * per_block + 2 * d + 2 * d + head  # + SSF after the patch projection and final norm
    if name == "kadaptation":  # per target: n (r m + m r) fast factors; a bias per layer; rules per target kind
        parts = len(config.targets.split(","))
        rules = 2 * config.experts**2 if config.rules == "rank1" else config.experts**3  # l_i r_i^T or dense
        return depth * (parts * 2 * d * config.rank + (d if config.bias else 0)) + parts * rules + head
    if name.startswith("peft:"):
        layers = {"attn": qkv, "mlp": fc1, "both": qkv + fc1}[config.sites]
        if name == "peft:loha":  # two Hadamard-multiplied low-rank pairs
            return sum(2 * config.r * (l.in_features + l.out_features) for l in layers) + head
        if name == "peft:ia3":  # k and v outputs (d each), the MLP's hidden activation
            return {"attn": 2 * d * depth, "mlp": fc1[0].out_features * depth,
                    "both": (2 * d + fc1[0].out_features) * depth}[config.sites] + head
        if name == "peft:vera":  # two scaling vectors per layer, shared frozen random projections
            return sum(l.out_features + config.r for l in layers) + head
        # LoKr and OFT: the parameters peft itself declares as the adapter's (their factorisations
        # depend on the layer shapes), measured on a separately adapted copy.
        from peft.tuners.tuners_utils import BaseTunerLayer

        spec = METHODS.get(name)
        probe = spec.apply(copy.deepcopy(model), config)
        own = sum(p.numel() for m in probe.modules() if isinstance(m, BaseTunerLayer)
                  for attr in m.adapter_layer_names for p in getattr(m, attr).parameters())
        assert own > 0
        return own + head
    raise AssertionError(f"no budget formula for method {name}: add one to this table")


ALL_METHODS = list(METHODS)


def _adapted(name: str, **opts):
    spec = METHODS.get(name)
    config = spec.config_from_dict(opts)
    base = make_tiny_vit()
    torch.manual_seed(1)
    adapted = spec.apply(copy.deepcopy(base), config)
    return spec, config, base, adapted


_train_steps = conformance.train_steps  # a few AdamW steps; the names of tensors that got gradients


def test_every_method_is_in_the_table():
    assert set(ALL_METHODS) >= {"alore", "lora", "full", "linear"}
    for name in ALL_METHODS:
        spec = METHODS.get(name)
        expected_trainable(name, spec.default_config(), make_tiny_vit())


# The contract's generic checks live in alore_bench.conformance (also `alore-bench validate method`
# for plugins); every built-in method goes through them here.
@pytest.mark.parametrize("check", [check for _label, check in conformance.CHECKS if check is not conformance.check_budget])
@pytest.mark.parametrize("name", ALL_METHODS)
def test_contract(name, check):
    spec = METHODS.get(name)
    check(spec, spec.default_config())


@pytest.mark.parametrize("name", ALL_METHODS)
def test_trainable_count_matches_formula(name):
    spec, config, base, adapted = _adapted(name)
    assert trainable_parameter_count(adapted) == expected_trainable(name, config, base)


def test_loading_adapter_weights_of_another_method_fails(tmp_path):
    from alore_bench.methods.base import load_adapter, save_adapter

    spec, config, _base, adapted = _adapted("lora")
    save_adapter(adapted, tmp_path / "lora.safetensors", "lora", config)
    _spec, _config, _base, other = _adapted("alore")
    with pytest.raises(ValueError, match="do not fit this model"):
        load_adapter(other, tmp_path / "lora.safetensors")


@pytest.mark.parametrize("name", [n for n in ALL_METHODS if n not in ("full", "linear")])
def test_method_without_targets_fails_loudly(name):
    """On a model without any layer a method targets, apply raises instead of training the head only."""
    # No linear, convolution, norm, bias or block: only a parametrised activation.
    model = nn.Sequential(nn.PReLU(), nn.Flatten())
    model.get_classifier = lambda: nn.Identity()
    spec = METHODS.get(name)
    with pytest.raises((UserError, RuntimeError, ValueError)):
        spec.apply(model, spec.default_config())


def test_lora_merge_equals_peft_merge_and_unload():
    from peft import LoraConfig, get_peft_model

    spec, config, base, adapted = _adapted("lora")
    _train_steps(adapted, steps=3)
    # The same adapter weights through peft's own PeftModel and its merge_and_unload.
    reference = copy.deepcopy(base)
    peft_model = get_peft_model(reference, LoraConfig(r=config.rank, lora_alpha=config.alpha,
                                                      target_modules=[f"blocks.{i}.attn.qkv" for i in range(2)]))
    lora_weights = {k: v for k, v in adapted.state_dict().items() if "lora_" in k}
    missing = peft_model.base_model.model.load_state_dict(lora_weights, strict=False)
    assert not missing.unexpected_keys
    peft_model.base_model.model.head.load_state_dict(adapted.head.state_dict())
    merged_ours = spec.merge(copy.deepcopy(adapted)).eval()
    merged_peft = peft_model.merge_and_unload().eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(merged_ours(x), merged_peft(x), rtol=0, atol=1e-6)
    for (n1, p1), (n2, p2) in zip(merged_ours.state_dict().items(), merged_peft.state_dict().items()):
        assert n1 == n2 and torch.allclose(p1, p2, atol=1e-6)


def test_vpt_per_task_prompt_lengths():
    spec = METHODS.get("vpt_deep")
    config = spec.config_from_dict({"length": 10, "task_lengths": "cifar100:100, dtd:1"})
    assert spec.config_for_task(config, "dtd").length == 1
    assert spec.config_for_task(config, "cifar100").length == 100
    assert spec.config_for_task(config, "svhn").length == 10
    model = spec.apply(make_tiny_vit(), spec.config_for_task(config, "dtd"))
    assert trainable_parameter_count(model) == 2 * 1 * 32 + head_parameter_count(model)
    with pytest.raises(UserError, match="task:length"):
        spec.config_from_dict({"task_lengths": "dtd=3"})
    assert spec.config_for_task(METHODS.get("alore").default_config(), "dtd") == METHODS.get("alore").default_config()
