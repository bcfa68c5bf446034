"""A seeded backbone built from the cache of its first build (no initialisation, meta layout
filled from the pretrained state and the cached head and buffers) is the model and RNG state a
full build gives, for every backbone family."""

from __future__ import annotations

import pytest
import torch

from alore_bench.backbones import BACKBONES
from alore_bench.backbones.base import load_state_dict_checked
from alore_bench.runs import artifacts
from tests.support.families import TINY_BUILDS, tiny_spec


def build_twice(spec, classes: int, seed: int, monkeypatch):
    pretrained = {k: v.clone() for k, v in spec.create(num_classes=0).state_dict().items()}
    load = lambda model, state: load_state_dict_checked(model, state, spec.name)  # noqa: E731
    artifacts._INITIAL.clear()
    torch.manual_seed(seed)
    first = artifacts.seeded_backbone(spec, classes, 0.1, pretrained, load)
    rng_first = torch.get_rng_state()
    initialised = []
    real_create = type(spec).create
    monkeypatch.setattr(type(spec), "create", lambda self, *a, device="cpu", **k: initialised.append(str(device))
                        or real_create(self, *a, device=device, **k))
    torch.manual_seed(seed)
    second = artifacts.seeded_backbone(spec, classes, 0.1, pretrained, load)
    return first, rng_first, second, torch.get_rng_state(), initialised


@pytest.mark.parametrize("name", ["demo_vit"] + sorted(TINY_BUILDS))
def test_a_cached_build_is_the_full_build(name, monkeypatch):
    spec = BACKBONES.get(name) if name == "demo_vit" else tiny_spec(name)
    first, rng_first, second, rng_second, created_on = build_twice(spec, 7, 3, monkeypatch)
    assert created_on == ["meta"]  # the second build skipped the initialisation
    assert torch.equal(rng_first, rng_second)  # the RNG continues as after a full build
    a, b = artifacts._tensors(first), artifacts._tensors(second)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_another_seed_or_head_builds_in_full(monkeypatch):
    spec = BACKBONES.get("demo_vit")
    pretrained = {k: v.clone() for k, v in spec.create(num_classes=0).state_dict().items()}
    load = lambda model, state: load_state_dict_checked(model, state, spec.name)  # noqa: E731
    artifacts._INITIAL.clear()
    heads = []
    for seed, classes in ((1, 5), (2, 5), (1, 6)):
        torch.manual_seed(seed)
        heads.append(artifacts.seeded_backbone(spec, classes, 0.0, pretrained, load).head.weight.detach().clone())
    assert len(artifacts._INITIAL) == 3  # three keys, three full builds
    assert not torch.equal(heads[0], heads[1])


@pytest.mark.parametrize("name", sorted(BACKBONES.names()))
def test_every_backbone_lays_out_on_the_meta_device(name):
    model = BACKBONES.get(name).create(num_classes=10, device="meta")
    assert all(t.is_meta for t in artifacts._tensors(model).values())
