"""ALoRE: the definition, its budget on ViT-B/16, merging and the ablation options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alore_bench.errors import UserError
from alore_bench.methods import METHODS
from alore_bench.methods.alore import ALoReConfig, ALoReLinear, ALoReRules, apply_alore
from alore_bench.params import vit_b16_trainable_without_head

from tests.support.models import make_tiny_vit


def test_vit_b16_budget_is_147520():
    # 24 sites x 2 x 768 x 4 + 4^3 shared rule entries, counted on the meta device.
    assert vit_b16_trainable_without_head("alore") == 147_520


def test_lora_vit_b16_budget_is_294912():
    assert vit_b16_trainable_without_head("lora") == 294_912


def _random_site(experts=4, rank=3, d=24, out=10, scale=0.7):
    torch.manual_seed(0)
    base = nn.Linear(d, out)
    config = ALoReConfig(experts=experts, rank=rank, scale=scale, rules="per_site")
    site = ALoReLinear(base, config, ALoReRules(experts, learned=True, noise=0.3), own_rules=True)
    with torch.no_grad():
        site.down.normal_()  # leave the zero init so the check is not trivial
    return site


def test_factorised_forward_equals_dense_kronecker_definition():
    site = _random_site()
    x = torch.randn(5, 7, 24, dtype=torch.float64)
    site = site.double()
    n, m = site.experts, site.block
    dense = torch.zeros(24, 24, dtype=torch.float64)
    for i in range(n):
        expert = site.up[i] @ site.down[i]  # D_i U_i, (m, m)
        for p in range(n):
            for q in range(n):  # block (p, q) of S_i kron (D_i U_i) is S_i[p, q] * D_i U_i
                dense[p * m:(p + 1) * m, q * m:(q + 1) * m] += site.rules[i, p, q] * expert
    expected = site.base(x + site.scale * x @ dense.T)
    torch.testing.assert_close(site(x), expected)
    torch.testing.assert_close(site.delta_weight(), dense)
    # Both ways of computing dW x (delta picks the cheaper one for the shapes) are the definition.
    torch.testing.assert_close(site.factorised_delta(x), x @ dense.T)
    torch.testing.assert_close(x @ site.dense_delta().T, x @ dense.T)


@pytest.mark.parametrize("experts, rank, dense", [(2, 1, False), (12, 1, True)])
def test_parallel_sites_compute_the_kronecker_update_either_way(experts, rank, dense):
    # Parallel placement: dW shaped like W (10 x 24 here is not allowed: 12 out so that n divides it).
    torch.manual_seed(0)
    config = ALoReConfig(experts=experts, rank=rank, rules="per_site", placement="parallel")
    site = ALoReLinear(nn.Linear(24, 12), config, ALoReRules(experts, learned=True, noise=0.3), own_rules=True).double()
    with torch.no_grad():
        site.down.normal_()
    assert site.dense_is_cheaper() is dense
    x = torch.randn(3, 24, dtype=torch.float64)
    torch.testing.assert_close(site.dense_delta(), site.delta_weight())  # the same kron-sum as the merge's
    torch.testing.assert_close(site.factorised_delta(x), x @ site.delta_weight().T)
    torch.testing.assert_close(site(x), site.base(x) + site.scale * x @ site.delta_weight().T)


def test_merged_weight_is_w_times_identity_plus_scaled_delta():
    site = _random_site()
    merged = site.merged()
    x = torch.randn(9, 24)
    torch.testing.assert_close(merged(x), site(x), rtol=0, atol=1e-5)
    assert type(merged) is nn.Linear


def test_dw_rank_can_exceed_single_branch_rank():
    site = _random_site(experts=4, rank=1, d=32)
    # One branch of rank r gives rank <= r; n experts in Kronecker space reach up to n^2 r.
    assert torch.linalg.matrix_rank(site.delta_weight()) > 4


def test_shared_rules_are_held_once():
    model = apply_alore(make_tiny_vit(), ALoReConfig())
    names = [n for n, _ in model.named_parameters() if "rules" in n]
    assert names == ["alore_rules.weight"]
    sites = [m for m in model.modules() if isinstance(m, ALoReLinear)]
    assert len(sites) == 4 and all(s.rules is model.alore_rules.weight for s in sites)


@pytest.mark.parametrize("sites,count", [("both", 4), ("attn", 2), ("mlp", 2)])
def test_site_choice(sites, count):
    model = apply_alore(make_tiny_vit(), ALoReConfig(sites=sites))
    assert sum(isinstance(m, ALoReLinear) for m in model.modules()) == count


def test_single_branch_fixed_rule_has_no_rule_parameters():
    model = apply_alore(make_tiny_vit(), ALoReConfig(experts=1, rules="fixed"))
    assert not [n for n, p in model.named_parameters() if "rules" in n]
    site = next(m for m in model.modules() if isinstance(m, ALoReLinear))
    assert torch.equal(site.rules, torch.ones(1, 1, 1))


def test_experts_must_divide_width():
    with pytest.raises(UserError, match="experts=5 must divide the layer width 32"):
        apply_alore(make_tiny_vit(), ALoReConfig(experts=5))


def test_merged_model_after_training_is_plain_and_equal():
    spec = METHODS.get("alore")
    model = spec.apply(make_tiny_vit(), ALoReConfig(rules="shared", scale=2.0))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ALoReLinear):
                m.down.normal_(std=0.1)
    model.eval()
    x = torch.randn(3, 3, 16, 16)
    before = model(x)
    merged = spec.merge(model)
    assert not hasattr(merged, "alore_rules")
    torch.testing.assert_close(merged(x), before, rtol=0, atol=1e-4)


@pytest.mark.parametrize("method,budget,published", [
    ("bitfit", 102_912, "0.10M"),      # BitFit on ViT-B/16 as tabulated by VPT / NOAH
    ("adapter", 156_768, "0.16M"),     # Adapter with bottleneck 8 (NOAH's table)
    ("repadapter", 239_808, "0.24M"),  # RepAdapter's code (biases); its paper's 0.22M counts weights only
    ("ssf", 205_824, "0.21M"),         # SSF as tabulated by V-PETL Bench (the SSF paper prints 0.24M)
])
def test_published_budgets_on_vit_b16(method, budget, published):
    count = vit_b16_trainable_without_head(method)
    assert count == budget
    assert f"{count / 1e6:.2f}M" == published


def test_repadapter_paper_budget_counts_weights_only():
    from alore_bench.backbones import BACKBONES
    from alore_bench.methods import METHODS
    from alore_bench.methods.base import trainable_parameter_count

    spec = METHODS.get("repadapter")
    model = BACKBONES.get("vit_b16").create(num_classes=0, device="meta")
    with torch.device("meta"):
        model = spec.apply(model, spec.config_from_dict({"bias": False}))
    assert trainable_parameter_count(model) == 221_184  # the paper's 0.22M


@pytest.mark.parametrize("options", [
    {"placement": "parallel"}, {"zero_factor": "up"}, {"rule_init": "random"}, {"rules": "per_layer"},
    {"placement": "parallel", "rules": "per_layer", "zero_factor": "up", "rule_init": "random"},
])
def test_ablation_options_start_as_backbone_train_and_merge_exactly(options):
    from alore_bench.methods.base import trainable_parameter_count

    spec = METHODS.get("alore")
    config = spec.config_from_dict(options)
    base = make_tiny_vit()
    model = spec.apply(make_tiny_vit(), config)
    x = torch.randn(3, 3, 16, 16)
    model.eval(), base.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), base(x), rtol=0, atol=1e-6)  # one factor starts at zero
    sites = [m for m in model.modules() if isinstance(m, ALoReLinear)]
    zero = "up" if options.get("zero_factor") == "up" else "down"
    assert all(torch.count_nonzero(getattr(s, zero)) == 0 for s in sites)
    n, r, depth = config.experts, config.rank, len(model.blocks)
    widths = [(s.base.in_features, s.base.out_features if config.placement == "parallel" else s.base.in_features)
              for s in sites]
    rules = n**3 * (depth if config.rules == "per_layer" else 1)
    assert trainable_parameter_count(model) == sum(r * (a + b) for a, b in widths) + rules + 5 * 32 + 5
    if options.get("rule_init") == "random":
        assert not torch.allclose(sites[0].rules, torch.eye(n).expand(n, n, n), atol=0.2)
    with torch.no_grad():
        for s in sites:
            s.down.normal_(std=0.1), s.up.normal_(std=0.1)
        before = model(x)
        merged = spec.merge(model)
    torch.testing.assert_close(merged(x), before, rtol=0, atol=1e-4)
    assert not [n for n, _ in merged.named_parameters() if "alore" in n]


def _site_gradients(site: ALoReLinear, x: torch.Tensor):
    """Gradients of x and of the adapter's parameters for one backward, and the bytes autograd kept."""
    kept = {}

    def pack(tensor):
        kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    x = x.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = site(x)
    out.pow(2).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in (site.down, site.up, site.rules)]
    for p in (site.down, site.up, site.rules):
        p.grad = None
    return grads, sum(kept.values())


@pytest.mark.parametrize("placement", ["sequential", "parallel"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_the_recomputed_backward_keeps_only_the_input_and_gives_autograds_gradients(monkeypatch, placement, dropout):
    import alore_bench.methods.alore as alore

    torch.manual_seed(0)
    base = nn.Linear(64, 64).requires_grad_(False)  # frozen, as a method leaves it
    config = ALoReConfig(experts=4, rank=4, placement=placement, dropout=dropout, rules="per_site")
    site = ALoReLinear(base, config, ALoReRules(4, learned=True, noise=0.3), own_rules=True)
    with torch.no_grad():
        site.down.normal_()
    x = torch.randn(8, 65, 64)
    runs = {}
    for name, threshold in (("recomputed", 0), ("plain", float("inf"))):
        monkeypatch.setattr(alore, "RECOMPUTE_MIN_BYTES", threshold)
        torch.manual_seed(1)  # the same dropout mask
        runs[name] = _site_gradients(site, x)
    (recomputed, recomputed_bytes), (plain, plain_bytes) = runs["recomputed"], runs["plain"]
    assert all(torch.equal(a, b) for a, b in zip(recomputed, plain))
    input_bytes = x.numel() * x.element_size()
    parameters = sum(p.numel() * p.element_size() for p in (site.down, site.up, site.rules))
    # The input (and, with dropout, the dropped copy), the rules and the frozen base: nothing per token else.
    assert recomputed_bytes <= input_bytes * (2 if dropout else 1) + parameters + 4 * 64 * 65
    assert plain_bytes > recomputed_bytes + input_bytes // 2


def test_only_a_site_with_a_large_input_recomputes():
    from alore_bench.methods.alore import RECOMPUTE_MIN_BYTES

    site = _random_site(d=24, out=10)
    site.base.requires_grad_(False)
    calls = []
    original = site.plain_forward

    def spy(x, dropped, rules=None):
        calls.append(torch.is_grad_enabled())
        return original(x, dropped, rules)

    site.plain_forward = spy
    site(torch.randn(4, 24, requires_grad=True))  # 384 bytes: autograd keeps its own intermediates
    big = RECOMPUTE_MIN_BYTES // 4 // 24 + 1
    site(torch.randn(big, 24, requires_grad=True))  # recomputed: its forward runs without a graph
    assert calls == [True, False]
