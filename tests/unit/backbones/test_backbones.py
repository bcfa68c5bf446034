"""Backbones: Google's ViT .npz layout through timm's loader, weight resolution, demo weights."""

from __future__ import annotations

import pytest
import torch

from alore_bench.backbones import BACKBONES
from alore_bench.errors import UserError

from tests.support.models import make_tiny_vit
from tests.support.families import write_google_vit_npz

VIT_B16 = BACKBONES.get("vit_b16")
resolve_vit_b16 = VIT_B16.resolve_weights
load_vit_b16 = VIT_B16.load_weights


def test_google_npz_loads_through_timm_and_keeps_new_head(tmp_path):
    reference = make_tiny_vit(num_classes=0, seed=1)
    path = tmp_path / "ViT-B_16.npz"
    write_google_vit_npz(reference, path)
    source = resolve_vit_b16(str(path), tmp_path)
    assert source.kind == "npz" and len(source.sha256) == 64

    model = make_tiny_vit(num_classes=7, seed=2)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    load_vit_b16(model, source)
    loaded = model.state_dict()
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    for key, value in head_before.items():
        assert torch.equal(model.head.state_dict()[key], value)
    x = torch.randn(2, 3, 16, 16)
    reference.eval(), model.eval()
    torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True),
                               reference(x), rtol=0, atol=1e-5)


def test_weights_resolution_errors(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no such file.*ViT-B_16.npz"):
        resolve_vit_b16(str(tmp_path / "missing.npz"), tmp_path)
    (tmp_path / "weights.pth").write_bytes(b"x")
    source = resolve_vit_b16(str(tmp_path / "weights.pth"), tmp_path)  # any safe format; read when loaded
    with pytest.raises(UserError, match="weights.pth: not a readable checkpoint"):
        load_vit_b16(make_tiny_vit(num_classes=3), source)
    with pytest.raises(UserError, match="pass weights='PATH'"):
        resolve_vit_b16(None, tmp_path)
    from alore_bench.backbones import checkpoints

    monkeypatch.setattr(checkpoints, "cached_hub_file", lambda tag: None)
    monkeypatch.setattr(checkpoints, "hub_reachable", lambda timeout=3.0: True)
    assert resolve_vit_b16("timm", tmp_path).kind == "timm-hub"


def test_default_npz_location_under_data_dir(tmp_path):
    (tmp_path / "weights").mkdir()
    write_google_vit_npz(make_tiny_vit(num_classes=0), tmp_path / "weights" / "ViT-B_16.npz")
    assert resolve_vit_b16(None, tmp_path).location.endswith("weights/ViT-B_16.npz")


def test_demo_vit_weights_ship_with_the_package():
    spec = BACKBONES.get("demo_vit")
    source = spec.resolve_weights(None, None)
    model = spec.create(num_classes=3)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    spec.load_weights(model, source)
    changed = [k for k, v in model.state_dict().items() if not k.startswith("head.") and not torch.equal(v, fresh[k])]
    assert len(changed) == len([k for k in fresh if not k.startswith("head.")])


def test_vit_b16_architecture_matches_timm_tag():
    model = BACKBONES.get("vit_b16").create(num_classes=0, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 85_798_656


def test_demo_pretraining_script_runs_and_fits_demo_vit():
    from alore_bench.demo_pretrain import pretrain, source_images

    images, labels = source_images(50, seed=3)
    assert images.shape == (50, 32, 32, 3) and images.dtype.name == "uint8" and labels.max() < 72
    state, accuracy = pretrain(count=64, epochs=1, batch_size=32)
    assert 0.0 <= accuracy <= 1.0 and not any(k.startswith("head.") and v.numel() for k, v in state.items())
    model = BACKBONES.get("demo_vit").create(num_classes=4)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) == {"head.weight", "head.bias"} and not unexpected


def test_the_registry_normalisations_are_timms():
    """The registry writes timm's normalisation constants out (so it imports no timm): they must be
    timm's values, and each published entry the one its checkpoint was trained with."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD

    from alore_bench.backbones import base

    assert (base.IMAGENET_MEAN, base.IMAGENET_STD) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert (base.INCEPTION_MEAN, base.INCEPTION_STD) == (IMAGENET_INCEPTION_MEAN, IMAGENET_INCEPTION_STD)
    assert BACKBONES.get("vit_b16").mean == IMAGENET_INCEPTION_MEAN
    assert BACKBONES.get("swin_b").std == IMAGENET_DEFAULT_STD


def test_a_timm_entry_is_the_same_from_timm_and_from_the_cache(tmp_path, monkeypatch):
    from alore_bench.backbones import timm_any

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh = timm_any.timm_backbone("timm:vit_tiny_patch16_224.augreg_in21k")
    monkeypatch.setattr(timm_any, "timm_facts", lambda name: pytest.fail("read from timm again"))
    cached = timm_any.timm_backbone("timm:vit_tiny_patch16_224.augreg_in21k")
    assert (cached.family, cached.input_size, cached.mean, cached.std, cached.interpolation, cached.summary) == \
        (fresh.family, fresh.input_size, fresh.mean, fresh.std, fresh.interpolation, fresh.summary) == \
        ("vit", 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", fresh.summary)
    assert cached.create(num_classes=3).num_classes == 3
