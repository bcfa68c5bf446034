"""Training options that change where and how a run executes, not what it is: TensorBoard curves,
torch.compile (same logits as eager on CPU), channels-last batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.config import TrainConfig, config_from_dict
from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, Normalisation
from alore_bench.data.suites import Task
from alore_bench.engine import SilentProgress, compiled, evaluate
from alore_bench.env import resolve_device
from alore_bench.errors import UserError
from alore_bench.methods import METHODS

from tests.support.models import make_tiny_vit

runner = CliRunner()
NORM = Normalisation("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_tensorboard_events_hold_the_records_curve(env_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = runner.invoke(app, ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "demo", "--tasks",
                                 "textures", "--epochs", "3", "--device", "cpu", "--results-dir", str(tmp_path),
                                 "--log", "tensorboard"])
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.rglob("seed42.json")
    record = json.loads(path.read_text())
    folder = tmp_path / record["tensorboard"]
    assert folder == tmp_path / "tensorboard" / path.relative_to(tmp_path).with_suffix("")
    events = EventAccumulator(str(folder))
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert [step for step, _v in loss] == [1, 2, 3]
    assert np.allclose([v for _s, v in loss], [h["train_loss"] for h in record["history"]], rtol=1e-6)
    assert [e.value for e in events.Scalars("test/top1")] == pytest.approx([record["metrics"]["top1"]])
    assert len(events.Scalars("train/lr")) == 3


def test_compiled_model_gives_the_eager_logits_on_cpu():
    spec = METHODS.get("alore")
    model = spec.apply(make_tiny_vit(num_classes=3), spec.default_config()).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    batcher = DeviceBatcher(16, NORM, torch.device("cpu"))
    with torch.no_grad():
        eager = model(batcher(images))
        fast = compiled(model, True)(batcher(images))
    torch.testing.assert_close(fast, eager, rtol=1e-4, atol=1e-5)
    split = SplitData(Task("t", "s", "g", 3, {}), "test", images, eager.argmax(-1).numpy(), {})
    outcome = evaluate(model, split, batcher, 4, SilentProgress(), compile_model=True)
    assert outcome.top1 == 1.0  # the compiled evaluation agrees with eager predictions on every image


def test_evaluation_counts_on_the_device_and_reads_the_count_once(monkeypatch):
    model = make_tiny_vit(num_classes=3).eval()
    images = np.random.default_rng(2).integers(0, 256, size=(11, 16, 16, 3), dtype=np.uint8)
    batcher = DeviceBatcher(16, NORM, torch.device("cpu"))
    with torch.no_grad():
        predicted = model(batcher(images)).argmax(-1).numpy()
    labels = predicted.copy()
    labels[[0, 5, 10]] = (labels[[0, 5, 10]] + 1) % 3  # three images wrong, in different batches
    split = SplitData(Task("t", "s", "g", 3, {}), "test", images, labels, {})
    reads = []
    real_int = torch.Tensor.__int__
    monkeypatch.setattr(torch.Tensor, "__int__", lambda self: reads.append(1) or real_int(self))
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail("evaluation read a value per batch"))
    top1 = {size: evaluate(model, split, batcher, size, SilentProgress()).top1 for size in (2, 4, 11, 256)}
    assert top1 == {size: 8 / 11 for size in (2, 4, 11, 256)}  # the batch size changes nothing
    assert len(reads) == 4  # one read per evaluation, however many batches


def test_compile_is_a_recorded_recipe_setting(env_data, tmp_path):
    assert config_from_dict(TrainConfig, {"compile": True}, "test").compile is True
    with pytest.raises(UserError):
        config_from_dict(TrainConfig, {"compile": "maybe"}, "test")


def test_channels_last_batches_hold_the_same_values():
    images = np.random.default_rng(1).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    for size in (8, 16):  # stored size and resized
        plain = DeviceBatcher(size, NORM, torch.device("cpu"))(images)
        nhwc = DeviceBatcher(size, NORM, torch.device("cpu"), channels_last=True)(images)
        assert nhwc.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(nhwc, plain, rtol=0, atol=0)


@pytest.mark.parametrize("choice, message", [("gpu", "choose auto, cpu, cuda or cuda:N"),
                                             ("cpu:1", "choose auto, cpu, cuda or cuda:N")])
def test_device_choices_are_checked(choice, message):
    with pytest.raises(UserError, match=message):
        resolve_device(choice)
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_is_cpu_without_asking_torch_where_no_gpu_can_be(monkeypatch):
    """`device_name` answers `auto` from the machine's GPU device nodes when there are none, and
    asks torch (the same answer as before) where there may be one."""
    from alore_bench import devices

    monkeypatch.setattr(devices, "may_have_gpu", lambda: False)
    assert devices.device_name("auto") == "cpu" and devices.device_name("cpu") == "cpu"
    monkeypatch.setattr(devices, "may_have_gpu", lambda: True)
    assert devices.device_name("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device is available"):
            devices.device_name("cuda:0")


@pytest.mark.parametrize("grad_clip", [0.0, 1e-3])
def test_gradient_clipping_bounds_the_norm_each_step_sees(grad_clip):
    """The gradient norm the optimiser steps on is at most grad_clip when it is set (ARC's recipe),
    and unclipped (above that bound on this model) when it is 0."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from alore_bench.engine import train

    spec = METHODS.get("lora")
    model = spec.apply(make_tiny_vit(num_classes=3), spec.default_config())
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(16, 16, 16, 3), dtype=np.uint8)
    split = SplitData(Task("t", "s", "g", 3, {}), "train", images, rng.integers(0, 3, size=16), {})
    norms = []

    def record_norm(optimizer, _args, _kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    config = config_from_dict(TrainConfig, {"epochs": 2, "warmup_epochs": 0, "batch_size": 8, "lr": 1e-2,
                                            "grad_clip": grad_clip})
    handle = register_optimizer_step_pre_hook(record_norm)
    try:
        train(model, split, DeviceBatcher(16, NORM, torch.device("cpu")), config, seed=0, progress=SilentProgress())
    finally:
        handle.remove()
    assert len(norms) == 4
    if grad_clip:
        assert max(norms) <= grad_clip * (1 + 1e-5)
    else:
        assert min(norms) > 1e-3  # the bound above is a real constraint on this model


def test_gradient_clipping_must_not_be_negative():
    with pytest.raises(UserError, match="grad_clip"):
        config_from_dict(TrainConfig, {"grad_clip": -1.0}).validate()


def checkpoint_world(tmp_path):
    from alore_bench.engine import TrainCheckpoint, optimizer_and_schedule

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    config = TrainConfig(epochs=4, batch_size=8, lr=1e-2)
    optimizer, scheduler = optimizer_and_schedule(model, config, 2)
    heard = []
    checkpoint = TrainCheckpoint(tmp_path / ".seed1.ckpt", 1, "abc/seed1", heard.append)
    checkpoint.save(model, optimizer, scheduler, 2, 4, [{"train_loss": 1.0}], 3.0, torch.device("cpu"))
    return model, optimizer, scheduler, checkpoint, heard


def tamper(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "unreadable"),
    (lambda p: p.write_bytes(b"not a checkpoint at all"), "unreadable"),
    (lambda p: tamper(p, lambda s: s.update(identity="other/seed1")), "another configuration"),
    (lambda p: tamper(p, lambda s: s["params"].update({"1.weight": torch.zeros(5, 5)})), "another shape"),
    (lambda p: tamper(p, lambda s: s["params"].update({"1.bias": torch.full((2,), float("nan"))})), "non-finite"),
    (lambda p: tamper(p, lambda s: s.pop("optimizer")), "'optimizer'"),
    (lambda p: tamper(p, lambda s: s.update(epoch="2")), "'epoch'"),
    (lambda p: tamper(p, lambda s: s["optimizer"]["param_groups"].append(dict(s["optimizer"]["param_groups"][0]))),
     "optimizer or scheduler"),
])
def test_a_damaged_or_foreign_checkpoint_is_ignored_with_a_warning_and_nothing_half_loaded(tmp_path, damage, reason):
    model, optimizer, scheduler, checkpoint, heard = checkpoint_world(tmp_path)
    with torch.no_grad():
        model[1].weight.add_(1.0)  # differs from the saved state: a half-load would show
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer_before = optimizer.state_dict()
    damage(checkpoint.path)
    assert checkpoint.load(model, optimizer, scheduler, torch.device("cpu")) is None
    assert len(heard) == 1 and str(checkpoint.path) in heard[0] and reason in heard[0], heard
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert optimizer.state_dict()["param_groups"] == optimizer_before["param_groups"]


def test_a_sound_checkpoint_resumes(tmp_path):
    model, optimizer, scheduler, checkpoint, heard = checkpoint_world(tmp_path)
    saved = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.zero_()
    state = checkpoint.load(model, optimizer, scheduler, torch.device("cpu"))
    assert state is not None and state["epoch"] == 2 and not heard
    assert torch.equal(model[1].weight, saved)
