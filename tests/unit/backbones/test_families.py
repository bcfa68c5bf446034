"""Every backbone family: published checkpoints through the real loaders, safe loading, methods
placed and merged on ViT, Swin, ConvNeXt and Mixer, and ALoRE end to end from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from alore_bench.backbones import BACKBONES
from alore_bench.backbones import checkpoints
from alore_bench.backbones.sites import HookedBlock, family_of, residual_blocks
from alore_bench.cli import app
from alore_bench.errors import UserError
from alore_bench.methods import METHODS
from alore_bench.methods.base import replace_submodule, trainable_parameter_count

from tests.support.families import FAMILY_BACKBONES, TINY_BUILDS, WRITERS, reference_model, tiny_spec, write_fixture

PUBLISHED = list(WRITERS)


def test_registry_lists_the_eight_checkpoints_of_the_paper():
    expected = {"vit_b16": "ViT-B_16.npz", "vit_l16": "ViT-L_16.npz", "vit_h14": "ViT-H_14.npz",
                "vit_b16_mocov3": "linear-vit-b-300ep.pth.tar", "vit_b16_mae": "mae_pretrain_vit_base.pth",
                "swin_b": "swin_base_patch4_window7_224_22k.pth", "convnext_b": "convnext_base_22k_224.pth",
                "mixer_b16": "jx_mixer_b16_224_in21k-617b3de2.pth"}
    assert {name: BACKBONES.get(name).weight_file for name in expected} == expected
    sizes = {name: sum(p.numel() for p in BACKBONES.get(name).create(0, device="meta").parameters())
             for name in ("vit_l16", "swin_b", "convnext_b", "mixer_b16")}
    assert sizes == {"vit_l16": 303_301_632, "swin_b": 86_743_224, "convnext_b": 87_566_464, "mixer_b16": 59_111_472}


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_layout_loads_through_the_real_loader(name, tmp_path):
    path, reference = write_fixture(name, tmp_path / "weights")
    spec = tiny_spec(name)
    source = spec.resolve_weights(None, tmp_path)  # found by its published name in <data dir>/weights
    assert source.location == str(path.resolve()) and len(source.sha256) == 64
    model = spec.create(num_classes=7)
    head = {k: v.clone() for k, v in model.get_classifier().state_dict().items()}
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    spec.load_weights(model, source)
    loaded, expected = model.state_dict(), reference.state_dict()
    head_prefix = checkpoints.classifier_prefix(model)
    compared = 0
    for key, value in loaded.items():
        if key.startswith(head_prefix):
            continue
        if key.startswith(spec.new_keys):  # MAE's fc_norm: new, as MAE's fine-tuning makes it
            assert torch.equal(value, fresh[key])
            continue
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
        compared += 1
    assert compared >= len([k for k in loaded if not k.startswith(head_prefix)]) - 2
    for key, value in head.items():
        assert torch.equal(model.get_classifier().state_dict()[key], value)


def test_weights_folder_option_and_environment(tmp_path, monkeypatch):
    path, _ = write_fixture("mixer_b16", tmp_path / "elsewhere")
    spec = tiny_spec("mixer_b16")
    assert spec.resolve_weights(str(tmp_path / "elsewhere"), None).location == str(path.resolve())
    monkeypatch.setenv("ALORE_BENCH_WEIGHTS", str(tmp_path / "elsewhere"))
    assert spec.resolve_weights(None, tmp_path / "data").location == str(path.resolve())


class CreatesAFile:
    """Unpickling this runs open(path, 'w'): the attack a weights_only loader must refuse."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save({"model": reference_model("vit_b16_mae").state_dict(), "args": CreatesAFile(target)}, path)
    with pytest.raises(UserError, match="refused") as info:
        checkpoints.read_checkpoint(path)
    assert not target.exists() and "\n" not in str(info.value) and str(path) in str(info.value)
    objects = tmp_path / "ViT-B_16.npz"
    np.savez(objects, weights=np.array([CreatesAFile(target)], dtype=object))
    with pytest.raises(UserError, match="refused"):
        tiny_spec("vit_b16").load_weights(tiny_spec("vit_b16").create(3), tiny_spec("vit_b16").resolve_weights(str(objects), None))
    assert not target.exists()


@pytest.mark.parametrize("name", ["vit_b16", "swin_b", "convnext_b"])
def test_truncated_empty_and_garbage_files_are_one_line(name, tmp_path):
    path, _ = write_fixture(name, tmp_path)
    data = path.read_bytes()
    spec = tiny_spec(name)
    for content in (data[: len(data) // 2], b"", b"not a checkpoint at all"):
        path.write_bytes(content)
        with pytest.raises(UserError) as info:
            spec.load_weights(spec.create(3), spec.resolve_weights(str(path), None))
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoints.read_checkpoint(bad)


def test_wrong_architecture_missing_keys_and_wrong_shapes_are_one_line(tmp_path):
    swin_file, _ = write_fixture("swin_b", tmp_path / "swin")
    convnext = tiny_spec("convnext_b")
    with pytest.raises(UserError, match="do not fit|conversion"):
        convnext.load_weights(convnext.create(3), convnext.resolve_weights(str(swin_file), None))
    path, reference = write_fixture("mixer_b16", tmp_path / "mixer")
    state = torch.load(path, weights_only=True)
    del state["blocks.1.norm2.weight"]
    state["stem.proj.bias"] = torch.zeros(5)
    torch.save(state, path)
    mixer = tiny_spec("mixer_b16")
    with pytest.raises(UserError) as info:
        mixer.load_weights(mixer.create(3), mixer.resolve_weights(str(path), None))
    message = str(info.value)
    assert "missing 1: blocks.1.norm2.weight" in message and "wrong shape 1: stem.proj.bias" in message
    assert "head" not in message.replace("--backbone", "")


def test_missing_weights_name_the_file_the_folder_and_the_options(tmp_path):
    with pytest.raises(UserError) as info:
        BACKBONES.get("vit_l16").resolve_weights(None, tmp_path)
    message = str(info.value)  # as the Python API names the options
    for part in ("ViT-L_16.npz", str(tmp_path / "weights"), "weights='PATH'", "weights_dir"):
        assert part in message
    from alore_bench.cli.options import flag_style

    flags = info.value.render(flag_style)  # as the command line does
    assert "--weights PATH" in flags and "--weights-dir" in flags and "weights_dir" not in flags


def test_hub_that_does_not_answer_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "cached_hub_file", lambda tag: None)
    monkeypatch.setattr(checkpoints, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(UserError, match="not reachable.*pass weights='PATH'"):
        BACKBONES.get("swin_b").resolve_weights("timm", tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert checkpoints.hub_reachable() is False


def test_any_timm_model_by_name(tmp_path):
    spec = BACKBONES.get("timm:deit_tiny_patch16_224")
    assert spec.family == "vit" and spec.input_size == 224 and spec.weight_tag == "deit_tiny_patch16_224"
    assert BACKBONES.get("timm:convnext_atto").family == "convnext"
    with pytest.raises(UserError, match="timm has no model"):
        BACKBONES.get("timm:vit_bse_patch16")
    with pytest.raises(UserError, match="not a family"):
        BACKBONES.get("timm:resnet18")
    # A timm-layout file (e.g. a fine-tuned DeiT saved with safetensors) loads through timm's filter.
    from safetensors.torch import save_file

    torch.manual_seed(0)
    donor = spec.create(num_classes=0)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(tmp_path / "deit.safetensors"))
    model = spec.create(num_classes=4)
    spec.load_weights(model, spec.resolve_weights(str(tmp_path / "deit.safetensors"), None))
    assert torch.equal(model.blocks[0].attn.qkv.weight, donor.blocks[0].attn.qkv.weight)
    with pytest.raises(UserError, match="or weights='timm'"):
        spec.resolve_weights(None, tmp_path)


# ---- methods on every family ---------------------------------------------------------------------

NOT_APPLICABLE = "n/a"
VIT_ONLY = {"swin": NOT_APPLICABLE, "convnext": NOT_APPLICABLE, "mixer": NOT_APPLICABLE}
FAMILY_METHODS = {
    # method: per family, options where its default does not apply (ConvNeXt has no token-mixing
    # linear layer), or NOT_APPLICABLE where the method must refuse the family in one line
    "alore": {}, "lora": {"convnext": {"sites": "mlp"}}, "adapter": {}, "adaptformer": {}, "bitfit": {},
    "ln_tune": {}, "ssf": {}, "repadapter": {}, "fact_tt": {}, "fact_tk": {}, "full": {}, "linear": {},
    "arc": {}, "peft:lokr": {"convnext": {"sites": "mlp"}},
    "kadaptation": {"convnext": NOT_APPLICABLE, "mixer": NOT_APPLICABLE, "swin": {"experts": 4}},  # 32 > tiny width
    "rlrr": VIT_ONLY, "vpt_shallow": VIT_ONLY, "vpt_deep": VIT_ONLY,
}


def family_model(family: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return TINY_BUILDS[FAMILY_BACKBONES[family]](num_classes=5)


@pytest.mark.parametrize("family", list(FAMILY_BACKBONES))
def test_blocks_with_plain_hooks_compute_exactly_the_original(family):
    model = family_model(family).eval()
    assert family_of(model) == family
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    for name, block, kind, _width in residual_blocks(model):
        replace_submodule(model, name, HookedBlock(block, kind))
    assert torch.equal(model(x), before)


@pytest.mark.parametrize("family", list(FAMILY_BACKBONES))
@pytest.mark.parametrize("method", list(FAMILY_METHODS))
def test_method_on_family(method, family):
    spec = METHODS.get(method)
    options = FAMILY_METHODS[method].get(family, {})
    if options == NOT_APPLICABLE:
        with pytest.raises(UserError) as info:
            spec.apply(family_model(family), spec.default_config())
        assert "\n" not in str(info.value)
        return
    config = spec.config_from_dict(options)
    model = family_model(family)
    frozen = {k: v.clone() for k, v in model.state_dict().items()}
    reference = family_model(family).eval()
    torch.manual_seed(1)
    adapted = spec.apply(model, config)
    x = torch.randn(2, 3, 32, 32)
    adapted.eval()
    out = adapted(x)
    assert out.shape == (2, 5)
    if spec.starts_as_backbone(config):
        torch.testing.assert_close(out, reference(x), rtol=1e-5, atol=1e-5)
    assert 0 < trainable_parameter_count(adapted) <= sum(p.numel() for p in adapted.parameters())
    adapted.train()
    adapted(x).square().mean().backward()
    trained = [p for p in adapted.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trained if p.numel())
    if method != "full":  # every frozen backbone tensor is untouched by apply
        named = dict(adapted.named_parameters())
        for key, value in frozen.items():
            if key in named and not named[key].requires_grad:
                assert torch.equal(named[key].detach(), value), key
    if spec.mergeable:
        with torch.no_grad():  # a trained-looking state, so merging is not checked at zero
            for p in trained:
                p.add_(torch.randn_like(p) * 0.05)
        adapted.eval()
        before = adapted(x)
        merged = spec.merge(adapted)
        assert not any(isinstance(m, HookedBlock) for m in merged.modules()) or method in ("adapter", "adaptformer")
        torch.testing.assert_close(merged(x), before, rtol=1e-4, atol=1e-4)


def test_lora_on_convnext_names_the_fix():
    with pytest.raises(UserError, match="sites=mlp"):
        METHODS.get("lora").apply(family_model("convnext"), METHODS.get("lora").default_config())


@pytest.mark.parametrize("family", list(FAMILY_BACKBONES))
def test_alore_runs_end_to_end_from_a_fixture_checkpoint(family, env_data, tmp_path):
    name = FAMILY_BACKBONES[family]
    write_fixture(name, tmp_path / "weights")
    tiny = tiny_spec(name).name
    result = CliRunner().invoke(app, [
        "run", "--method", "alore", "--backbone", tiny, "--suite", "demo", "--tasks", "digits", "--epochs", "1",
        "--batch-size", "32", "--device", "cpu", "--weights-dir", str(tmp_path / "weights"),
        "--results-dir", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    records = list((tmp_path / "results").rglob("seed*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["protocol"]["weights"]["sha256"] and record["protocol"]["weights"]["location"].endswith(
        BACKBONES.get(name).weight_file)
    assert 0.0 <= record["metrics"]["top1"] <= 100.0
    assert record["protocol"]["eval_model"] == "merged" and record["metrics"]["merge_max_abs_logit_diff"] < 1e-3


def test_run_without_weights_is_one_line_exit_2(env_data, tmp_path):
    result = CliRunner().invoke(app, ["run", "--method", "alore", "--backbone", "vit_l16", "--suite", "demo",
                                      "--tasks", "digits", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "ViT-L_16.npz" in result.output and "--weights" in result.output


def test_list_backbones_shows_all_eight_with_their_files_and_whether_found(tmp_path, monkeypatch):
    write_fixture("mixer_b16", tmp_path / "weights")
    # A wide terminal: one row per backbone, no wrapped cells.
    result = CliRunner().invoke(app, ["list", "backbones", "--data-dir", str(tmp_path)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    for name in PUBLISHED:
        assert BACKBONES.get(name).weight_file in rows[name], name
    assert "(in the package)" in rows["demo_vit"] and rows["demo_vit"].rstrip(" │").endswith("yes")
    assert rows["mixer_b16"].rstrip(" │").endswith("yes") and rows["swin_b"].rstrip(" │").endswith("no")
    assert "59.1M" in rows["mixer_b16"]


def test_list_methods_on_another_backbone_gives_budgets_and_reasons(monkeypatch):
    result = CliRunner().invoke(app, ["list", "methods", "--backbone", "convnext_b", "--match", "[al]*"],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "144,448" in result.output and "use --opt sites=mlp" in result.output  # alore; lora's reason
