"""Recipe features the official trainings need, read back from what the engine really does: the
learning rate of every optimizer step (per-iteration, per-epoch, a step behind, warm-up inside,
cool-down), model EMA (the averaged weights are what is evaluated, and survive a resume), random
resized crops, and backbone dropout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from alore_bench.config import TrainConfig, config_from_dict, make_train_config
from alore_bench.data.cache import SplitData
from alore_bench.data.loader import DeviceBatcher, Normalisation, iterate, random_resized_box
from alore_bench.data.suites import SUITES, Task
from alore_bench.engine import SilentProgress, TrainCheckpoint, train
from alore_bench.methods import METHODS

from tests.support.models import make_tiny_vit

NORM = Normalisation("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CPU = torch.device("cpu")
IMAGES, BATCH = 16, 8  # two steps per epoch


def split(seed: int = 0, count: int = IMAGES) -> SplitData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 16, 16, 3), dtype=np.uint8)
    return SplitData(Task("t", "s", "g", 3, {}), "train", images, rng.integers(0, 3, size=count), {})


def lora_model(seed: int = 0):
    torch.manual_seed(seed)
    spec = METHODS.get("lora")
    return spec.apply(make_tiny_vit(num_classes=3), spec.default_config())


def step_lrs(config: TrainConfig) -> list:
    """The learning rate each optimizer step of a training run used, in order."""
    seen = []
    handle = register_optimizer_step_pre_hook(lambda opt, _a, _k: seen.append(opt.param_groups[0]["lr"]))
    try:
        train(lora_model(), split(), DeviceBatcher(16, NORM, CPU), config, seed=0, progress=SilentProgress())
    finally:
        handle.remove()
    return seen


def recipe(**values) -> TrainConfig:
    return config_from_dict(TrainConfig, {"batch_size": BATCH, **values})


def per_epoch(lrs: list) -> list:
    """One lr per epoch; a per-epoch schedule holds it for every step of the epoch."""
    epochs = [lrs[i:i + IMAGES // BATCH] for i in range(0, len(lrs), IMAGES // BATCH)]
    assert all(len(set(e)) == 1 for e in epochs), "the lr changed inside an epoch"
    return [e[0] for e in epochs]


def vpt_lambda(step: int, warmup: int, total: int) -> float:
    """KMnP/vpt src/solver/lr_scheduler.py WarmupCosineSchedule.lr_lambda, in its own terms."""
    if step < warmup:
        return step / max(1.0, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def test_vpt_schedule_steps_per_epoch_from_zero_as_its_lambda_lr():
    """VPT's recipe (vtab1k's vpt_shallow): epoch k trains at base x lambda(k); the first epoch at 0."""
    config = make_train_config(SUITES.get("vtab1k").recipe_for("vpt_shallow"),
                               {"epochs": 10, "warmup_epochs": 3, "batch_size": BATCH, "lr": 0.5})
    assert (config.lr_step, config.warmup_inside, config.warmup_lr, config.min_lr) == ("epoch", False, 0.0, 0.0)
    lrs = per_epoch(step_lrs(config))
    assert lrs[0] == 0.0
    assert lrs == pytest.approx([0.5 * vpt_lambda(k, 3, 10) for k in range(10)], abs=1e-12)


def noah_lr(t: int, lr: float, warmup_lr: float, min_lr: float, warmup: int, epochs: int) -> float:
    """timm's CosineLRScheduler as NOAH's create_scheduler builds it (warmup_prefix False), at point t."""
    if t < warmup:
        return warmup_lr + t * (lr - warmup_lr) / warmup
    if t >= epochs:
        return min_lr
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * t / epochs))


def test_noah_schedule_is_a_step_behind_with_the_warmup_inside_the_cosine():
    """vtab1k's default recipe: after epoch e NOAH calls step(e), so epoch k trains at point k - 1
    and the first two epochs at the warm-up's start; the cosine spans every epoch."""
    config = make_train_config(SUITES.get("vtab1k").recipe_for("lora"), {"epochs": 10, "warmup_epochs": 2, "batch_size": BATCH})
    assert (config.lr_step, config.warmup_inside) == ("epoch_behind", True)
    lrs = per_epoch(step_lrs(config))
    expected = [noah_lr(max(k - 1, 0), 1e-3, 1e-6, 1e-5, 2, 10) for k in range(10)]
    assert lrs[0] == lrs[1] == pytest.approx(1e-6)
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_epoch_schedule_with_warmup_inside_and_cooldown_as_timms_train_py():
    """SSF's: epoch k at point k of a cosine over `epochs`, then the cool-down epochs at min_lr."""
    lrs = per_epoch(step_lrs(recipe(epochs=6, warmup_epochs=2, lr=1e-2, warmup_lr=1e-7, min_lr=1e-8,
                                    lr_step="epoch", warmup_inside=True, cooldown_epochs=3)))
    assert len(lrs) == 9
    assert lrs == pytest.approx([noah_lr(k, 1e-2, 1e-7, 1e-8, 2, 6) for k in range(9)], rel=1e-9)
    assert lrs[6:] == pytest.approx([1e-8] * 3)


def test_iteration_schedule_is_unchanged_warmup_prefix_then_cosine_per_step():
    lrs = step_lrs(recipe(epochs=4, warmup_epochs=1, lr=1e-2, warmup_lr=0.0, min_lr=0.0))
    steps, warm = 8, 2
    # The lr a step uses was set after the step before: step s (0-based) runs at point s.
    expected = [1e-2 * s / warm if s < warm else 0.5 * 1e-2 * (1 + math.cos(math.pi * (s - warm) / (steps - warm)))
                for s in range(steps)]
    assert lrs == pytest.approx(expected, abs=1e-12)


def trainable(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_model_ema_weights_are_what_training_leaves_for_evaluation():
    """With ema_decay d, the weights train() hands on are the running average
    ema <- d ema + (1 - d) w after every step, not the last step's weights."""
    decay = 0.6
    model = lora_model()
    average = trainable(model)
    steps = []  # the trainable weights after every optimizer step
    real_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        steps.append(trainable(model))
        return out

    torch.optim.AdamW.step = step
    try:
        train(model, split(), DeviceBatcher(16, NORM, CPU), recipe(epochs=3, warmup_epochs=0, lr=1e-2,
                                                                   ema_decay=decay),
              seed=0, progress=SilentProgress())
    finally:
        torch.optim.AdamW.step = real_step
    assert len(steps) == 6
    for weights in steps:
        average = {n: decay * average[n] + (1 - decay) * weights[n] for n in average}
        last = weights
    final = trainable(model)
    for name in final:
        torch.testing.assert_close(final[name], average[name], rtol=1e-5, atol=1e-6)
    moved = [n for n in final if not torch.allclose(final[n], last[n])]
    assert moved  # the average is not the last weights: what is evaluated is the EMA's


def test_a_resumed_run_with_ema_gives_the_uninterrupted_runs_weights(tmp_path):
    config = recipe(epochs=4, warmup_epochs=1, lr=1e-2, ema_decay=0.7, lr_step="epoch")
    batcher = DeviceBatcher(16, NORM, CPU)
    whole = lora_model()
    train(whole, split(), batcher, config, seed=3, progress=SilentProgress())

    class Stop(Exception):
        pass

    def stop_after_two(epoch, _model):
        if epoch == 2:
            raise Stop

    checkpoint = TrainCheckpoint(tmp_path / ".seed3.ckpt", 1, "id/seed3")
    with pytest.raises(Stop):
        train(lora_model(), split(), batcher, config, seed=3, progress=SilentProgress(), checkpoint=checkpoint,
              after_epoch=stop_after_two)
    assert "ema" in torch.load(checkpoint.path, weights_only=True)
    resumed = lora_model()
    facts = train(resumed, split(), batcher, config, seed=3, progress=SilentProgress(), checkpoint=checkpoint)
    assert facts["resumed_from_epoch"] == 2
    for name, value in trainable(whole).items():
        torch.testing.assert_close(trainable(resumed)[name], value, rtol=0, atol=0)


def test_a_checkpoint_without_the_ema_is_not_resumed_by_a_run_with_ema(tmp_path):
    config = recipe(epochs=2, warmup_epochs=0, lr=1e-2)
    checkpoint = TrainCheckpoint(tmp_path / ".s.ckpt", 1, "id/s", warn=(heard := []).append)
    with pytest.raises(RuntimeError):
        train(lora_model(), split(), DeviceBatcher(16, NORM, CPU), config, seed=0, progress=SilentProgress(),
              checkpoint=checkpoint, after_epoch=lambda e, m: (_ for _ in ()).throw(RuntimeError("stop")))
    with_ema = recipe(epochs=2, warmup_epochs=0, lr=1e-2, ema_decay=0.5)
    facts = train(lora_model(), split(), DeviceBatcher(16, NORM, CPU), with_ema, seed=0, progress=SilentProgress(),
                  checkpoint=checkpoint)
    assert facts["resumed_from_epoch"] is None and "model EMA" in heard[0]


def test_random_resized_boxes_follow_the_scale_and_aspect_limits():
    rng = np.random.default_rng(0)
    boxes = [random_resized_box(60, 90, rng) for _ in range(2000)]
    shares = np.array([h * w / (60 * 90) for _t, _l, h, w in boxes])
    for top, left, h, w in boxes:
        assert 0 <= top <= 60 - h and 0 <= left <= 90 - w and h > 0 and w > 0
    inside = [(h, w) for _t, _l, h, w in boxes if (h, w) != (60, 80)]  # the fall-back is the centre at 4/3
    assert all(3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05 for h, w in inside)
    assert shares.min() >= 0.07 and shares.max() <= 1.0 and 0.3 < shares.mean() < 0.7  # U(0.08, 1) of the area
    assert random_resized_box(1, 200, np.random.default_rng(1)) == (0, 99, 1, 1)  # no draw fits: the centre, 4/3 at most


def test_random_resized_crop_batches_are_seeded_full_size_and_not_the_plain_images():
    data, batcher = split(count=8), DeviceBatcher(16, NORM, CPU)
    plain = next(iterate(data, batcher, 8, shuffle=True, seed=1, epoch=0))[0]
    first = next(iterate(data, batcher, 8, shuffle=True, seed=1, epoch=0, train_crop="random_resized"))[0]
    again = next(iterate(data, batcher, 8, shuffle=True, seed=1, epoch=0, train_crop="random_resized"))[0]
    other = next(iterate(data, batcher, 8, shuffle=True, seed=1, epoch=1, train_crop="random_resized"))[0]
    assert first.shape == plain.shape == (8, 3, 16, 16)
    assert torch.equal(first, again) and not torch.equal(first, other) and not torch.equal(first, plain)
    evaluation = next(iterate(data, batcher, 8, shuffle=False, train_crop="random_resized"))[0]
    assert torch.equal(evaluation, batcher(data.images))  # evaluation is never cropped at random


def test_backbone_dropout_sets_timms_projection_and_embedding_layers():
    from alore_bench.runs.trial import set_backbone_dropout

    model = make_tiny_vit(num_classes=3)
    depth = len(model.blocks)
    assert set_backbone_dropout(model, 0.1) == 1 + 3 * depth  # pos_drop, attn.proj_drop, mlp.drop1, mlp.drop2
    assert model.pos_drop.p == model.blocks[0].attn.proj_drop.p == model.blocks[-1].mlp.drop2.p == 0.1
    assert model.blocks[0].attn.attn_drop.p == 0.0  # VPT's attention dropout is 0
    assert set_backbone_dropout(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), 0.1) == 0


@pytest.mark.parametrize("suite", ["vtab1k", "fgvc"])
def test_full_fine_tuning_trains_as_vpts_end2end_recipe(suite):
    """configs/base-finetune.yaml, optimizer.py's forced 0.01 decay, vit_configs.py's dropout, VPT's head,
    and tune_*.py's grid scaled by 384 / 256."""
    spec = SUITES.get(suite)
    config = make_train_config(spec.recipe_for("full"))
    assert (config.optimizer, config.batch_size, config.epochs, config.warmup_epochs) == ("adamw", 384, 100, 5)
    assert (config.lr_step, config.warmup_inside, config.warmup_lr, config.min_lr) == ("epoch", False, 0.0, 0.0)
    assert (config.weight_decay, config.dropout, config.drop_path, config.head_init) == (0.01, 0.1, 0.0, "vpt")
    assert config.lr == pytest.approx(0.001 * 384 / 256)
    grid = spec.grid_for("full")
    assert grid["lr"] == pytest.approx([lr * 384 / 256 for lr in (0.0001, 0.0005, 0.001, 0.005)])
    assert grid["weight_decay"] == [0.0, 0.01]


def test_ssf_fgvc_preset_trains_with_random_resized_crops_and_an_evaluated_ema():
    from alore_bench.presets import PRESETS

    preset = PRESETS.get("ssf_fgvc_paper")
    for task in preset.tasks:
        values = preset.recipe_for(task)
        assert values["train_crop"] == "random_resized"  # --simple-aug
        assert values["ema_decay"] == (0.999 if task == "oxford_flowers" else 0.9998)  # --model-ema-decay
        assert (values["lr_step"], values["warmup_inside"], values["cooldown_epochs"]) == ("epoch", True, 10)
