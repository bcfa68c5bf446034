"""Backbones: Google's ViT .npz layout through timm's loader, weight resolution, demo weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alore_bench.backbones import BACKBONES
from alore_bench.backbones.vit import load_vit_b16, resolve_vit_b16
from alore_bench.errors import UserError

from .conftest import make_tiny_vit


def write_google_vit_npz(model, path, num_classes=21843, seed=0):
    """Write `model` in the layout of Google's original ViT-B_16.npz (ImageNet-21k release),
    including its pre_logits and 21,843-way head, as a fixture checkpoint."""
    rng = np.random.default_rng(seed)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    d = sd["cls_token"].shape[-1]
    heads = model.blocks[0].attn.num_heads
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "pre_logits/kernel": rng.normal(size=(d, d)).astype(np.float32),
        "pre_logits/bias": np.zeros(d, np.float32),
        "head/kernel": rng.normal(size=(d, num_classes)).astype(np.float32),
        "head/bias": np.zeros(num_classes, np.float32),
    }
    for i in range(len(model.blocks)):
        p, b = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            part = qkv_w[j * d:(j + 1) * d]  # (d_out, d_in)
            w[p + f"MultiHeadDotProductAttention_1/{name}/kernel"] = part.T.reshape(d, heads, d // heads)
            w[p + f"MultiHeadDotProductAttention_1/{name}/bias"] = qkv_b[j * d:(j + 1) * d].reshape(heads, d // heads)
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = sd[b + "attn.proj.weight"].T.reshape(heads, d // heads, d)
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = sd[b + "attn.proj.bias"]
        for ln, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[p + f"{ln}/scale"] = sd[b + f"{norm}.weight"]
            w[p + f"{ln}/bias"] = sd[b + f"{norm}.bias"]
        for r in range(2):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = sd[b + f"mlp.fc{r + 1}.weight"].T
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = sd[b + f"mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


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


def test_weights_resolution_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        resolve_vit_b16(str(tmp_path / "missing.npz"), tmp_path)
    (tmp_path / "weights.pth").write_bytes(b"x")
    with pytest.raises(UserError, match="original .npz"):
        resolve_vit_b16(str(tmp_path / "weights.pth"), tmp_path)
    with pytest.raises(UserError, match="alore-bench|--weights"):
        resolve_vit_b16(None, tmp_path)
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
    from alore_bench.backbones.demo_pretrain import pretrain, source_images

    images, labels = source_images(50, seed=3)
    assert images.shape == (50, 32, 32, 3) and images.dtype.name == "uint8" and labels.max() < 72
    state, accuracy = pretrain(count=64, epochs=1, batch_size=32)
    assert 0.0 <= accuracy <= 1.0 and not any(k.startswith("head.") and v.numel() for k, v in state.items())
    model = BACKBONES.get("demo_vit").create(num_classes=4)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) == {"head.weight", "head.bias"} and not unexpected
