"""The method contract, checked: the table every method goes through, built-in or plugin
(`alore-bench validate method NAME`, and tests/unit/methods/test_methods.py for the built-ins).

Each check adapts a tiny timm ViT (the real architecture: fused qkv, Mlp blocks) and raises
AssertionError with a one-line reason when the method breaks the contract."""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .methods import METHODS
from .methods.base import (MethodSpec, head_parameter_count, load_adapter, save_adapter, total_parameter_count,
                           trainable_parameter_count)

TINY_VIT = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
CLASSES = 5


def tiny_vit(seed: int = 0) -> nn.Module:
    """A tiny ViT that looks pretrained: its biases and norm scales moved off their fresh-init values
    (zero biases would hide a method whose parameters multiply them)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(num_classes=CLASSES, **TINY_VIT)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


def adapt(spec: MethodSpec, config: Any, seed: int = 1) -> Tuple[nn.Module, nn.Module]:
    """(the unadapted tiny model, an adapted copy)."""
    base = tiny_vit()
    torch.manual_seed(seed)
    return base, spec.apply(copy.deepcopy(base), config)


def inputs(count: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, TINY_VIT["img_size"], TINY_VIT["img_size"], generator=generator)


def train_steps(model: nn.Module, steps: int, seed: int = 0) -> set:
    """A few AdamW steps on random data; the names of trainable tensors that got non-zero gradients."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    got_grad = set()
    model.train()
    for _ in range(steps):
        x, y = torch.randn(8, 3, 16, 16), torch.randint(0, CLASSES, (8,))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        got_grad |= {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    return got_grad


def check_config_round_trip(spec: MethodSpec, config: Any) -> str:
    again = spec.config_from_dict(json.loads(json.dumps(spec.config_to_dict(config))))
    assert again == config, f"the config does not survive a JSON round trip: {again!r} != {config!r}"
    return "the config survives a JSON round trip"


def check_shape_and_identity(spec: MethodSpec, config: Any) -> str:
    base, adapted = adapt(spec, config)
    x = inputs(4)
    base.eval(), adapted.eval()
    with torch.no_grad():
        out = adapted(x)
        assert out.shape == (4, CLASSES), f"logits of shape {tuple(out.shape)}, expected (4, {CLASSES})"
        same = torch.allclose(out, base(x), rtol=0, atol=1e-6)
    if spec.starts_as_backbone(config):
        assert same, "identity_at_init is declared but the adapted model does not start as the backbone"
        return "logits of the right shape; starts as the backbone (declared)"
    assert not same, "identity_at_init=False is declared but the adapted model starts as the backbone"
    return "logits of the right shape; starts away from the backbone (declared)"


def check_budget(spec: MethodSpec, config: Any) -> str:
    base, adapted = adapt(spec, config)
    trainable = trainable_parameter_count(adapted)
    head = head_parameter_count(base)
    assert trainable >= head, f"{trainable} trainable parameters, fewer than the head's {head}: the head must train"
    if spec.budget is None:
        return f"{trainable - head:,} trainable without the head (no budget formula declared: MethodSpec.budget)"
    declared = spec.budget(base, config)
    assert trainable - head == declared, (f"{trainable - head:,} trainable parameters without the head, "
                                          f"the declared budget is {declared:,}")
    return f"{declared:,} trainable without the head, as declared"


def check_frozen_and_gradients(spec: MethodSpec, config: Any) -> str:
    _base, adapted = adapt(spec, config)
    frozen = {n: p.detach().clone() for n, p in adapted.named_parameters() if not p.requires_grad}
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    got_grad = train_steps(adapted, steps=2)
    missing = sorted(trainable - got_grad)
    assert not missing, f"no gradient within two steps for {', '.join(missing[:3])}"
    changed = [n for n, p in adapted.named_parameters() if n in frozen and not torch.equal(p, frozen[n])]
    assert not changed, f"frozen weights changed by training: {', '.join(changed[:3])}"
    return f"{len(frozen)} frozen tensors bit-identical after training; all {len(trainable)} trainable get gradients"


def check_save_load(spec: MethodSpec, config: Any) -> str:
    _base, adapted = adapt(spec, config)
    train_steps(adapted, steps=2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "adapter.safetensors"
        save_adapter(adapted, path, spec.name, config)
        torch.manual_seed(123)  # another initialisation: loading must overwrite all of it
        fresh = spec.apply(tiny_vit(), config)
        metadata = load_adapter(fresh, path)
    assert metadata["method"] == spec.name, f"the saved file names method {metadata['method']!r}"
    adapted.eval(), fresh.eval()
    x = inputs(3)
    with torch.no_grad():
        assert torch.equal(adapted(x), fresh(x)), "logits differ after a safetensors save and load"
    return "safetensors save and load give identical logits"


def check_merge(spec: MethodSpec, config: Any) -> str:
    if not spec.mergeable:
        return "not mergeable (declared)"
    base, adapted = adapt(spec, config)
    train_steps(adapted, steps=3)
    adapted.eval()
    x = inputs(6)
    with torch.no_grad():
        before = adapted(x)
        merged = spec.merge(adapted)
        after = merged(x)
    difference = float((after - before).abs().max())
    assert difference <= 1e-4, f"merged logits differ from the unmerged ones by {difference:.2e}"
    with torch.no_grad():
        assert not torch.allclose(after, base.eval()(x), atol=1e-4), "three training steps did not change the model"
    assert total_parameter_count(merged) == total_parameter_count(base), "the merged model is not a plain backbone"
    assert list(merged.state_dict()) == list(base.state_dict()), "the merged model's weights are not the backbone's"
    assert {type(m) for m in merged.modules()} == {type(m) for m in base.modules()}, \
        "the merged model has module types the backbone does not"
    return f"merged equals unmerged (max logit difference {difference:.1e}) and is a plain backbone"


CHECKS: List[Tuple[str, Callable[[MethodSpec, Any], str]]] = [
    ("config JSON round trip", check_config_round_trip),
    ("shape and identity at init", check_shape_and_identity),
    ("trainable = declared budget", check_budget),
    ("frozen weights and gradients", check_frozen_and_gradients),
    ("safetensors save / load", check_save_load),
    ("merge", check_merge),
]


@dataclass
class CheckResult:
    check: str
    ok: bool
    detail: str


def validate_method(name: str) -> List[CheckResult]:
    """Every check of the contract on method `name` (default options); a failing check does not stop the others."""
    spec = METHODS.get(name)
    config = spec.default_config()
    results = []
    for label, check in CHECKS:
        try:
            results.append(CheckResult(label, True, check(spec, config)))
        except AssertionError as error:
            results.append(CheckResult(label, False, str(error).splitlines()[0] if str(error) else "failed"))
        except Exception as error:  # a crash inside the method is a failed check, not a traceback
            results.append(CheckResult(label, False, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
    return results
