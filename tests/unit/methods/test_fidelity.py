"""Each baseline's default pinned against what its official code does (placement read back with
forward hooks, initial statistics, trainable sets, budgets on ViT-B/16)."""

from __future__ import annotations

import math

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from alore_bench.methods import METHODS
from alore_bench.methods.base import trainable_parameter_count
from alore_bench.params import vit_b16_trainable_without_head

from tests.support.models import TINY_VIT_ARGS

# A tiny ViT with ViT-B's MLP ratio (4): FacT's official layout assumes four d x d chunks.
RATIO4 = dict(TINY_VIT_ARGS, mlp_ratio=4.0)


def tiny(**overrides) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(num_classes=5, **{**RATIO4, **overrides})


def adapted(name: str, model=None, **opts):
    spec = METHODS.get(name)
    torch.manual_seed(1)
    return spec.apply(model if model is not None else tiny(), spec.config_from_dict(opts))


def randomise(model: nn.Module) -> None:
    """Give every trainable tensor non-trivial values (as after training)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 0.1)


def capture(module: nn.Module, store: list, output: bool = False):
    def hook(_m, args, out=None):
        store.append((out if output else args[0]).detach().clone())
    return module.register_forward_hook(lambda m, a, o: hook(m, a, o)) if output else \
        module.register_forward_pre_hook(lambda m, a: hook(m, a))


# --- budgets on ViT-B/16 without the head (meta device), each the official code's ---

@pytest.mark.parametrize("name, budget", [
    ("adapter", 12 * (768 * 8 + 8 + 8 * 768 + 768)),  # NOAH: one bottleneck-8 adapter per block, 0.16M
    ("adaptformer", 12 * (768 * 8 + 8 + 8 * 768 + 768)),  # bottleneck 8, the published 0.16M row
    ("lora", 12 * 8 * (768 + 3 * 768)),  # NOAH: rank 8 on the fused qkv, 0.29M
    ("repadapter", 24 * (768 * 8 + 8 + 768 * 4 + 768)),  # with the official biases: 0.24M
    ("fact_tt", 2 * 768 * 8 + 12 * 12 * 64),  # rank 8
    ("fact_tk", 2 * 768 * 32 + 32**3 + 32 * 144),  # rank 32
    ("peft:ia3", 12 * (768 + 768 + 3072)),  # k, v and the FFN activation
    ("alore", 147_520),
])
def test_vit_b16_budgets_without_head(name, budget):
    assert vit_b16_trainable_without_head(name) == budget


# --- AdaptFormer ---

def test_adaptformer_reads_the_residual_stream_and_adds_outside_drop_path():
    model = adapted("adaptformer")
    randomise(model)
    config = METHODS.get("adaptformer").default_config()
    assert (config.bottleneck, config.scale, config.dropout) == (8, 0.1, 0.1)
    block = model.blocks[0]
    norm2_inputs, adapter_inputs = [], []
    capture(block.block.norm2, norm2_inputs)
    capture(block.channel_hook.adapter, adapter_inputs)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(adapter_inputs[0], norm2_inputs[0])  # x before norm2, not norm2(x)
    # Dropped paths (drop-path zeroes both branches of a sample) keep the adapter's contribution.
    block.block.drop_path1, block.block.drop_path2 = _Zero(), _Zero()
    mid = norm2_inputs[0]
    with torch.no_grad():
        torch.testing.assert_close(block(mid), mid + block.channel_hook.adapter(mid))


class _Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


def test_adaptformer_initialisation_is_the_official_lora_init():
    model = adapted("adaptformer", model=tiny(embed_dim=64, num_heads=2))
    adapter = model.blocks[0].channel_hook.adapter
    bound = 1 / math.sqrt(64)  # kaiming_uniform(a=sqrt(5)) on a (8 x 64) weight
    assert adapter.down.weight.abs().max() <= bound and adapter.down.weight.abs().max() > 0.8 * bound
    for tensor in (adapter.down.bias, adapter.up.weight, adapter.up.bias):
        assert torch.count_nonzero(tensor) == 0
    assert isinstance(adapter.act, nn.ReLU) and adapter.dropout.p == 0.1


# --- NOAH's adapter ---

def test_adapter_follows_the_drop_pathed_mlp_output_with_noah_init():
    model = adapted("adapter", model=tiny(embed_dim=64, num_heads=2))
    block = model.blocks[0]
    wrapper = block.channel_hook  # sees the MLP branch after drop-path (the identity in eval)
    mlp_out, adapter_in = [], []
    capture(block.block.mlp, mlp_out, output=True)
    capture(wrapper.adapter, adapter_in)
    model.eval()
    with torch.no_grad():
        model(torch.randn(2, 3, 16, 16))
    torch.testing.assert_close(adapter_in[0], mlp_out[0])
    bottleneck = wrapper.adapter
    assert type(bottleneck.act).__name__ == "QuickGELU"
    # NOAH's VisionTransformer.init_weights resets every nn.Linear, the adapter's too: trunc-normal
    # std 0.02, zero biases (model/supernet_vision_transformer_timm.py, _init_vit_weights).
    for linear in (bottleneck.down, bottleneck.up):
        assert abs(linear.weight.std().item() - 0.02) < 0.003 and linear.weight.abs().max() < 0.1
        assert torch.count_nonzero(linear.bias) == 0
    assert bottleneck.dropout.p == 0.1  # NOAH's --drop_rate_adapter
    # The adapter module's own init (overwritten in NOAH's model) stays as an option.
    module_init = adapted("adapter", model=tiny(embed_dim=64, num_heads=2), init="xavier").blocks[0].channel_hook.adapter
    xavier = math.sqrt(6 / (64 + 8))
    for linear in (module_init.down, module_init.up):
        assert linear.weight.abs().max() <= xavier and linear.weight.abs().max() > 0.8 * xavier
        assert 0 < linear.bias.abs().max() < 1e-5
    # Houlsby's placement adds a second adapter after attention.
    houlsby = adapted("adapter", placement="houlsby")
    assert trainable_parameter_count(houlsby) > trainable_parameter_count(adapted("adapter"))


# --- VPT ---

def test_vpt_defaults_and_frozen_backbone_in_eval_mode_while_training():
    for name in ("vpt_shallow", "vpt_deep"):
        spec = METHODS.get(name)
        assert spec.default_config().dropout == 0.0
        model = adapted(name, model=tiny(drop_path_rate=0.5), length=3)
        spec.set_train_mode(model)
        assert not any(m.training for m in model.blocks.blocks.modules())
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():  # no drop-path: two training-mode passes agree
            torch.testing.assert_close(model(x), model(x))
        with_dropout = adapted(name, model=tiny(), length=3, dropout=0.5)
        spec.set_train_mode(with_dropout)
        assert with_dropout.blocks.dropout.training and not with_dropout.blocks.blocks.training


# --- FacT: our layers against the official formulas, with the same tensors ---

def _official_tt_deltas(layer_kind, x, factors, cores, s):
    """fact_tt.py fact_forward_attn / fact_forward_mlp (no dropout: eval)."""
    u, v = factors.u, factors.v
    B, N, _ = x.shape
    if layer_kind == "qkv":
        return torch.cat([(x @ u.T) @ cores[o, 0].T @ v.T for o in range(3)], dim=2) * s
    if layer_kind == "fc1":
        w = torch.cat([cores[o, 0] for o in range(cores.shape[0])], dim=0)  # Linear(r, 4r).weight
        return (((x @ u.T) @ w.T).reshape(B, N, -1, u.shape[0]) @ v.T).reshape(B, N, -1) * s
    w = torch.cat([cores[0, i] for i in range(cores.shape[1])], dim=1)  # fc2: Linear(4r, r).weight
    chunks = x.reshape(B, N, -1, u.shape[1]) @ u.T
    return (chunks.reshape(B, N, -1) @ w.T) @ v.T * s


def _official_tk_deltas(layer_kind, x, factors, first, s):
    """fact_tk.py fact_forward_attn / fact_forward_mlp (no dropout: eval)."""
    u, v, r = factors.u, factors.v, factors.u.shape[0]
    B, N, C = x.shape
    if layer_kind == "qkv":
        c = factors.tensor @ factors.slot_factor[:, first:first + 4]
        return torch.cat([((x @ u.T) @ c[:, :, k]) @ v.T for k in range(3)], dim=2) * s
    c = factors.tensor @ factors.slot_factor[:, first:first + 8]
    fc1_c, fc2_c = c[:, :, :4].reshape(r, r * 4), c[:, :, 4:].reshape(r, r * 4)
    if layer_kind == "fc1":
        return (((x @ u.T) @ fc1_c).reshape(B, N, 4, r) @ v.T).reshape(B, N, 4 * C) * s
    return ((x.reshape(B, N, 4, C // 4) @ u.T).reshape(B, N, 4 * r) @ fc2_c.t()) @ v.T * s


@pytest.mark.parametrize("name", ["fact_tt", "fact_tk"])
def test_fact_matches_the_official_forward(name):
    model = adapted(name, rank=4, scale=3.0)
    randomise(model)
    model.eval()
    factors = model.fact_factors
    for kind, layer, first in (("qkv", model.blocks[1].attn.qkv, 12), ("fc1", model.blocks[1].mlp.fc1, 16),
                               ("fc2", model.blocks[1].mlp.fc2, 16)):
        x = torch.randn(2, 5, layer.base.in_features)
        with torch.no_grad():
            ours = layer(x) - layer.base(x)
            official = (_official_tt_deltas(kind, x, factors, layer.cores.weight, 3.0) if name == "fact_tt"
                        else _official_tk_deltas(kind, x, factors, first, 3.0))
        torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-5)


def test_fact_initialisation_and_dropout_after_the_core():
    model = adapted("fact_tt", model=tiny(embed_dim=64, num_heads=2), rank=8)
    factors = model.fact_factors
    assert torch.count_nonzero(factors.v) == 0  # FacTv zero
    assert factors.u.abs().max() <= 1 / math.sqrt(64) and factors.u.abs().max() > 0.8 / math.sqrt(64)
    qkv_cores, fc2_cores = model.blocks[0].attn.qkv.cores.weight, model.blocks[0].mlp.fc2.cores.weight
    # nn.Linear(r, r) init: uniform(+-1/sqrt(r)), std 1/sqrt(3 r); fc2's Linear(4r, r): 1/sqrt(4 r)
    assert qkv_cores.abs().max() <= 1 / math.sqrt(8) and abs(qkv_cores.std() - 1 / math.sqrt(24)) < 0.03
    assert fc2_cores.abs().max() <= 1 / math.sqrt(32) and fc2_cores.abs().max() > 0.8 / math.sqrt(32)
    dropped = []
    capture(model.blocks[0].attn.qkv.dropout, dropped)
    model.train()
    model(torch.randn(1, 3, 16, 16))
    assert dropped[0].shape[-2:] == (3, 8)  # the cores' output: 3 slots x rank, before V


def test_fact_per_task_budgets_from_the_paper_presets():
    from alore_bench.presets import PRESETS

    tt = PRESETS.get("fact_tt_paper")
    budgets = {task: _vit_b16_budget("fact_tt", opts) for task, opts in tt.tasks.items()}
    assert budgets["cifar100"] == 2 * 768 * 8 + 144 * 64 and budgets["svhn"] == 2 * 768 * 16 + 144 * 256
    assert round(sum(budgets.values()) / len(budgets) / 1e6, 2) == 0.04  # the paper's FacT-TT 0.04M
    tk = PRESETS.get("fact_tk_paper")
    budgets = {task: _vit_b16_budget("fact_tk", opts) for task, opts in tk.tasks.items()}
    assert round(sum(budgets.values()) / len(budgets) / 1e6, 2) == 0.07  # the published "FacT" 0.07M row


def test_vpt_deep_per_task_budgets_from_the_preset():
    from alore_bench.presets import PRESETS

    preset = PRESETS.get("vpt_deep_paper")
    budgets = {task: _vit_b16_budget("vpt_deep", opts) for task, opts in preset.tasks.items()}
    assert budgets["oxford_flowers102"] == 12 * 1 * 768 and budgets["smallnorb_azi"] == 12 * 200 * 768


def test_vpt_deep_fgvc_preset_gives_the_published_fgvc_budget():
    from alore_bench.data.suites import SUITES
    from alore_bench.presets import PRESETS

    preset = PRESETS.get("vpt_deep_fgvc_paper")
    budgets = {task: _vit_b16_budget("vpt_deep", opts) for task, opts in preset.tasks.items()}
    assert budgets["stanford_cars"] == 12 * 200 * 768 and budgets["oxford_flowers"] == 12 * 5 * 768
    heads = [(768 + 1) * task.classes for task in SUITES.get("fgvc").tasks]
    without_head = sum(budgets.values()) / len(budgets)
    assert round(without_head / 1e6, 2) == 0.67  # the reference row's budget in our convention
    assert round((without_head + sum(heads) / len(heads)) / 1e6, 2) == 0.85  # as the FGVC table prints it


def test_ssf_preset_holds_its_official_per_task_recipes():
    from alore_bench.presets import PRESETS

    preset = PRESETS.get("ssf_paper")
    assert (preset.method, preset.suite, len(preset.tasks)) == ("ssf", "vtab1k", 19)
    common = {"batch_size": 64, "warmup_lr": 1e-7, "min_lr": 1e-8,  # 2 GPUs x --batch-size 32
              # timm's create_scheduler and train.py's step(epoch + 1), with its 10 cool-down epochs
              "lr_step": "epoch", "warmup_inside": True, "cooldown_epochs": 10}
    # train_scripts/vit/vtab/clevr_dist/train_ssf.sh and .../cifar_100/train_ssf.sh
    assert preset.recipe_for("clevr_dist") == {**common, "lr": 5e-2, "weight_decay": 5e-2, "drop_path": 0.1}
    assert preset.recipe_for("cifar100") == {**common, "lr": 5e-3, "weight_decay": 5e-5, "drop_path": 0.0}


def test_rlrr_preset_holds_its_official_per_task_recipes():
    from alore_bench.presets import PRESETS

    preset = PRESETS.get("rlrr_paper")
    assert (preset.method, preset.suite, len(preset.tasks)) == ("rlrr", "vtab1k", 19)
    common = {"batch_size": 32, "warmup_lr": 1e-7, "min_lr": 1e-8,  # every get_*_config in VTABConfig.py
              # timm's create_scheduler stepped with step(epoch), 10 cool-down epochs (train_vtab.py)
              "lr_step": "epoch_behind", "warmup_inside": True, "cooldown_epochs": 10}
    # get_clevr_count_config, get_resisc45_config and get_oxford_flowers102_config
    assert preset.recipe_for("clevr_count") == {**common, "lr": 5e-3, "weight_decay": 5e-5, "drop_path": 0.5,
                                                "flip": True}
    assert preset.recipe_for("resisc45") == {**common, "lr": 3e-3, "weight_decay": 5e-5, "drop_path": 0.0,
                                             "flip": False}
    assert preset.recipe_for("oxford_flowers102") == {**common, "lr": 3e-3, "weight_decay": 5e-2,
                                                      "drop_path": 0.3, "flip": False}
    assert sum(preset.recipe_for(t)["flip"] for t in preset.tasks) == 10  # simple_aug = True


def test_a_preset_recipe_sets_each_tasks_training_and_is_recorded(env_data, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from alore_bench import api
    from alore_bench.cli import app
    from alore_bench.errors import UserError
    from alore_bench.presets import PRESETS, _parse

    text = """name = "demo_recipe"\nmethod = "lora"\nsuite = "demo"\nsource = "a test"\ndescription = "d"
[recipe]
batch_size = 32
[tasks.textures.recipe]
lr = 3e-3
drop_path = 0.2
flip = true
"""
    monkeypatch.setitem(PRESETS._entries, "demo_recipe", _parse(text, "test"))
    summary = api.run("lora", "demo_vit", "demo", tasks=["textures", "digits"], epochs=1, device="cpu",
                      results_dir=tmp_path, preset="demo_recipe", say=lambda line: None).summary
    assert not summary.failed
    records = {r["task"]: r for r in (json.loads(p.read_text()) for p in tmp_path.rglob("seed42.json"))}
    textures, digits = records["textures"], records["digits"]
    assert (textures["config"]["train"]["lr"], textures["config"]["train"]["drop_path"]) == (3e-3, 0.2)
    assert textures["config"]["train"]["flip"] and textures["protocol"]["augment"] == "horizontal_flip"
    assert digits["config"]["train"]["lr"] == 1e-2 and not digits["config"]["train"]["flip"]  # the demo recipe's
    assert digits["protocol"]["augment"] is None
    assert textures["config"]["train"]["batch_size"] == digits["config"]["train"]["batch_size"] == 32
    with pytest.raises(UserError, match="sets lr per task; drop lr"):  # a given lr is never silently replaced
        api.run("lora", "demo_vit", "demo", tasks=["textures"], epochs=1, device="cpu", results_dir=tmp_path,
                preset="demo_recipe", lr=1e-3)
    result = CliRunner().invoke(app, ["tune", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo",
                                      "--preset", "demo_recipe", "--grid", "lr=1e-3,1e-2", "--results-dir",
                                      str(tmp_path / "tune")])
    assert result.exit_code == 2 and "sets lr per task, so the tuning grid cannot search it" in result.output
    with pytest.raises(ValueError, match="cannot set stage"):
        _parse(text + "stage = \"tune\"\n", "bad.toml")


def _vit_b16_budget(method: str, opts) -> int:
    from alore_bench.backbones import BACKBONES

    spec = METHODS.get(method)
    model = BACKBONES.get("vit_b16").create(num_classes=0, device="meta")
    with torch.device("meta"):
        model = spec.apply(model, spec.config_from_dict(opts))
    return trainable_parameter_count(model)


# --- RepAdapter ---

def test_repadapter_biases_and_dropout_on_the_hidden_layer():
    model = adapted("repadapter")
    layer = model.blocks[0].attn.qkv
    assert layer.down.bias is not None and layer.up_bias is not None
    assert layer.dropout.p == 0.1
    seen = []
    capture(layer.dropout, seen)
    model.train()
    model(torch.randn(1, 3, 16, 16))
    assert seen[0].shape[-1] == 8  # the hidden layer, not the d-wide input


# --- LoRA ---

def test_lora_default_is_noahs_fused_qkv_and_qv_variant_merges():
    model = adapted("lora", model=tiny(embed_dim=64, num_heads=2))
    layer = model.blocks[0].attn.qkv
    # NOAH's init_weights leaves LoRA_a and LoRA_b trunc-normal with std 0.02: B is not zero.
    for factor in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
        assert abs(factor.std().item() - 0.02) < 0.003 and factor.abs().max() < 0.1
    assert not METHODS.get("lora").starts_as_backbone(METHODS.get("lora").default_config())
    paper = adapted("lora", model=tiny(embed_dim=64, num_heads=2), init="zero_b").blocks[0].attn.qkv
    a = paper.lora_A["default"].weight  # nn.Linear(d, r) kaiming-uniform: bound 1/sqrt(d)
    assert a.abs().max() <= 1 / math.sqrt(64) and a.abs().max() > 0.8 / math.sqrt(64)
    assert torch.count_nonzero(paper.lora_B["default"].weight) == 0
    assert layer.lora_dropout["default"].p == 0.1  # NOAH's --drop_rate_LoRA on the LoRA input
    assert layer.scaling["default"] == 1.0
    qv = adapted("lora", targets="q,v")
    assert trainable_parameter_count(qv) == trainable_parameter_count(adapted("lora"))
    trained = {n for n, p in qv.named_parameters() if p.requires_grad and "lora" in n}
    assert all(".qkv.q." in n or ".qkv.v." in n for n in trained) and trained
    randomise(qv)
    qv.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = qv(x)
        merged = METHODS.get("lora").merge(qv)
        torch.testing.assert_close(merged(x), before, rtol=0, atol=1e-5)
    assert all(type(b.attn.qkv) is nn.Linear for b in merged.blocks)


# --- (IA)^3 ---

def test_ia3_scales_keys_values_and_the_ffn_activation_only():
    model = adapted("peft:ia3")
    names = sorted(n for n, p in model.named_parameters() if p.requires_grad and "ia3" in n)
    assert {n.split(".ia3_l")[0].split("blocks.0.")[-1] for n in names if n.startswith("blocks.0.")} == \
        {"attn.qkv.k", "attn.qkv.v", "mlp.fc2"}
    # q stays the frozen projection: the attention logits' queries are not rescaled.
    base = tiny()
    randomise(model)
    model.eval()
    x = torch.randn(1, 4, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.blocks[0].attn.qkv.q(x), base.blocks[0].attn.qkv(x)[..., :32])
        assert not torch.allclose(model.blocks[0].attn.qkv.k(x), base.blocks[0].attn.qkv(x)[..., 32:64])


def test_budgets_with_the_head_reproduce_ssfs_published_counts():
    """SSF's paper counts the head: 205,824 + the mean VTAB-1k head (38,045) = 0.24M, FGVC 0.39M."""
    from alore_bench.params import mean_head_parameters

    ssf = vit_b16_trainable_without_head("ssf")
    assert round((ssf + mean_head_parameters("vtab1k")) / 1e6, 2) == 0.24
    assert round((ssf + mean_head_parameters("fgvc")) / 1e6, 2) == 0.39
    assert round(ssf / 1e6, 2) == 0.21  # as V-PETL Bench tabulates it, without the head


def test_list_methods_shows_budgets_with_and_without_the_head():
    from typer.testing import CliRunner

    from alore_bench.cli import app

    result = CliRunner().invoke(app, ["list", "methods", "--match", "ssf"])
    assert result.exit_code == 0
    assert "205,824" in result.output and "243,869" in result.output and "386,231" in result.output


# --- ARC and RLRR against their official formulas ---

def test_arc_matches_the_official_adapter_and_shares_projections():
    model = adapted("arc", dim=6)
    spec = METHODS.get("arc")
    assert spec.default_config().dim == 50 and spec.default_config().dropout == 0.1
    att, mlp = model.blocks[0].attn.qkv, model.blocks[0].mlp.fc1
    assert torch.count_nonzero(att.rescale) == 0 and torch.count_nonzero(mlp.rescale) > 0  # official init
    assert att.projection is model.blocks[1].attn.qkv.projection  # one P for every block's attention
    randomise(model)
    model.eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():  # ARC_adapter.forward: x @ (P * lambda) @ P^T + b + x, then the frozen layer
        p, lam, b = att.projection, att.rescale, att.bias
        official = att.base(torch.matmul(torch.matmul(x, p * lam), p.t()) + b + x)
        torch.testing.assert_close(att(x), official)


def test_rlrr_matches_the_official_linear_and_adds_ssf_after_norms():
    model = adapted("rlrr")
    q = model.blocks[0].attn.qkv.q
    assert q.scale_out.abs().max() <= math.sqrt(6) and q.scale_out.abs().max() > 1  # kaiming, fan-in 1
    assert q.scale_in.abs().max() <= math.sqrt(6 / 32)
    assert type(model.blocks[0].norm1).__name__ == "ScaleShift" and type(model.norm).__name__ == "ScaleShift"
    randomise(model)
    x = torch.randn(2, 5, 32)
    with torch.no_grad():  # RLRRLinear.forward
        w = q.base.weight * q.scale_in * q.scale_out + q.base.weight
        torch.testing.assert_close(q(x), torch.nn.functional.linear(x, w, q.base.bias + q.shift))


@pytest.mark.parametrize("suite, official", [
    ("vtab1k", {"lr": 1e-2, "weight_decay": 0.0}),  # vtab_ARC_train.py lines 218-245
    ("fgvc", {"lr": 5e-3, "weight_decay": 1e-2}),  # FGVC_ARC_train.py lines 231-257
])
def test_arc_recipes_follow_its_official_training_scripts(suite, official):
    from alore_bench.config import make_train_config
    from alore_bench.data.suites import SUITES

    config = make_train_config(SUITES.get(suite).recipe_for("arc"))
    assert (config.lr, config.weight_decay) == (official["lr"], official["weight_decay"])
    assert (config.batch_size, config.drop_path, config.grad_clip) == (32, 0.0, 1.0)
    other = make_train_config(SUITES.get(suite).recipe_for("lora"))
    assert other.grad_clip == 0.0  # clipping is ARC's, not the suite's


def test_arc_rlrr_kadaptation_budgets_on_vit_b16():
    assert vit_b16_trainable_without_head("arc") == 2 * 768 * 50 + 24 * (50 + 768)
    per_block = 4 * (768 * 3) + (768 + 2 * 3072) + (3072 + 2 * 768) + 2 * 2 * 768
    assert vit_b16_trainable_without_head("rlrr") == 12 * per_block + 4 * 768
    # PEViT's formula (vision_benchmark/evaluation/model.py): per layer q and v fast factors
    # 32 x (24 x 1 + 1 x 24) each and the bias b (768); two rank-1 rule sets of 32 x 32 x 1 + 32 x 1 x 32.
    assert vit_b16_trainable_without_head("kadaptation") == 12 * (2 * 32 * (24 + 24) + 768) + 2 * (2 * 32 * 32) == 50_176


# --- VPT's training recipe ---

@pytest.mark.parametrize("suite, smallest_lr", [("vtab1k", 0.025), ("fgvc", 0.05)])
def test_vpt_trains_with_its_official_sgd_recipe_and_searches_its_own_grid(suite, smallest_lr):
    from alore_bench.config import make_train_config
    from alore_bench.data.suites import SUITES
    from alore_bench.engine import optimizer_and_schedule

    spec = SUITES.get(suite)
    for method in ("vpt_shallow", "vpt_deep"):
        config = make_train_config(spec.recipe_for(method))  # configs/base-prompt.yaml
        assert (config.optimizer, config.momentum, config.batch_size, config.weight_decay) == ("sgd", 0.9, 128, 1e-4)
        assert (config.warmup_epochs, config.epochs, config.warmup_lr, config.min_lr) == (10, 100, 0.0, 0.0)
        grid = spec.grid_for(method)  # tune_*.py base lrs x batch 128 / 256
        assert min(grid["lr"]) == smallest_lr and max(grid["lr"]) == 25.0
        assert sorted(grid["weight_decay"]) == [0.0, 1e-4, 1e-3, 1e-2]
        model = adapted(method, length=2)
        optimizer, _ = optimizer_and_schedule(model, config, steps_per_epoch=4)
        assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == 0.9
        assert not optimizer.defaults["nesterov"]  # torch.optim.SGD as VPT's make_optimizer builds it
        decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
        prompts = next(p for n, p in model.named_parameters() if "prompt" in n)
        assert id(prompts) in decayed and id(model.head.bias) not in decayed  # as VPT: all but the head's bias
    assert make_train_config(spec.recipe_for("lora")).optimizer == "adamw"


def test_head_starts_as_the_official_code_starts_it():
    """VPT's MLP head (src/models/mlp.py lines 52-57, special_bias from vit_models.py setup_head) and
    ARC's zero head (setup(): zero_head=True), set by their suites' recipes; others keep timm's."""
    import math

    from alore_bench.data.suites import SUITES
    from alore_bench.runs.trial import initialise_head
    from tests.support.models import make_tiny_vit

    for suite in ("vtab1k", "fgvc"):
        recipes = SUITES.get(suite)
        assert recipes.recipe_for("arc")["head_init"] == "zero"
        assert recipes.recipe_for("arc")["warmup_lr"] == recipes.recipe_for("arc")["min_lr"] == 0.0
        assert recipes.recipe_for("vpt_shallow")["head_init"] == recipes.recipe_for("vpt_deep")["head_init"] == "vpt"
        assert "head_init" not in recipes.recipe_for("lora") and "head_init" not in recipes.recipe_for("alore")
    torch.manual_seed(0)
    model = make_tiny_vit(num_classes=500)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialise_head(model, "timm")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    initialise_head(model, "vpt")
    head = model.get_classifier()
    # kaiming normal, fan-out: std sqrt(2 / out_features) = sqrt(2 / 500)
    assert abs(float(head.weight.std()) - math.sqrt(2 / 500)) < 0.1 * math.sqrt(2 / 500)
    assert torch.allclose(head.bias, torch.full_like(head.bias, -math.log(99)))
    initialise_head(model, "zero")
    assert not head.weight.any() and not head.bias.any()
    unchanged = [k for k in before if not k.startswith("head.")]
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in unchanged)  # the head only
