"""Linear probing on cached features: equal to training the head through the frozen eval-mode
backbone, as good as scikit-learn's logistic regression on real images, features reused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from alore_bench.backbones import BACKBONES
from alore_bench.cli import app
from alore_bench.config import TrainConfig
from alore_bench.data.cache import load_split
from alore_bench.data.loader import DeviceBatcher, resolve_normalisation
from alore_bench.data.suites import SUITES
from alore_bench.engine import SilentProgress, train
from alore_bench.methods import METHODS
from alore_bench.probe import extract_features, train_head_adamw

runner = CliRunner()


def _demo_vit(num_classes: int, seed: int = 3):
    spec = BACKBONES.get("demo_vit")
    torch.manual_seed(seed)
    model = spec.create(num_classes=num_classes, drop_path=0.1)
    spec.load_weights(model, spec.resolve_weights(None, Path(".")))
    return METHODS.get("linear").apply(model, METHODS.get("linear").default_config())


def test_adamw_on_cached_features_equals_training_through_the_frozen_backbone(demo_data):
    task = SUITES.get("demo").task("textures")
    data = load_split(demo_data, task, "train800")
    spec = BACKBONES.get("demo_vit")
    batcher = DeviceBatcher(spec.input_size, resolve_normalisation("backbone", spec.mean, spec.std),
                            torch.device("cpu"), spec.interpolation)
    config = TrainConfig(epochs=3, batch_size=64, lr=1e-2, warmup_epochs=1)
    through = _demo_vit(task.classes)
    cached = _demo_vit(task.classes)
    torch.testing.assert_close(through.head.weight, cached.head.weight)  # the same seeded head init
    train(through, data, batcher, config, seed=7, progress=SilentProgress(), train_mode=METHODS.get("linear").train_mode)
    features, labels = extract_features(cached, data, batcher)
    train_head_adamw(cached.head, features, labels, config, seed=7)
    torch.testing.assert_close(cached.head.weight, through.head.weight, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cached.head.bias, through.head.bias, rtol=1e-4, atol=1e-5)


def _write_digits_folder(root: Path) -> None:
    """scikit-learn's real handwritten digits as a pre-made VTAB-1k task folder (NOAH layout),
    8 x 8 grey levels upscaled to 32 x 32 RGB PNGs: 800 / 200 / 1000 / 797 images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    images = (digits.images[order] * (255 / 16)).astype(np.uint8)
    labels = digits.target[order]
    splits = {"train800": range(0, 800), "val200": range(800, 1000), "train800val200": range(0, 1000),
              "test": range(1000, len(labels))}
    task_root = root / "eurosat"
    (task_root / "images").mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((32, 32), Image.BICUBIC).convert("RGB").save(task_root / "images" / f"{i:04d}.png")
    for split, rows in splits.items():
        (task_root / f"{split}.txt").write_text("".join(f"images/{i:04d}.png {labels[i]}\n" for i in rows))


def test_linear_probe_on_real_digits_reaches_logistic_regression(tmp_path):
    from sklearn.linear_model import LogisticRegression

    _write_digits_folder(tmp_path / "vtab-1k")
    data = tmp_path / "data"
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--source", "folder", str(tmp_path / "vtab-1k"),
                                 "--tasks", "eurosat", "--data-dir", str(data), "--allow-mismatch"])
    assert result.exit_code == 0, result.output
    # An explicit vpt expects TFDS data: a pre-made folder is refused; the default (auto) takes noah.
    result = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--tasks", "eurosat",
                                 "--data-dir", str(data), "--results-dir", str(tmp_path / "results"), "--device", "cpu",
                                 "--protocol", "vpt"])
    assert result.exit_code == 2 and "--protocol noah" in result.output
    result = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--tasks", "eurosat",
                                 "--data-dir", str(data), "--results-dir", str(tmp_path / "results"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "results").rglob("seed42.json")).read_text())
    assert record["protocol"]["backbone_mode_in_training"] == "eval"
    assert record["protocol"]["preset"]["name"] == "noah" and record["protocol"]["normalisation"]["name"] == "imagenet"
    assert record["protocol"]["protocol_choice"] == "auto -> noah"
    assert record["protocol"]["interpolation"] == "bicubic"
    assert record["protocol"]["head_training"]["selection"]["on"] == "train800 -> val200"

    # scikit-learn's LogisticRegression (default C) on the same frozen features.
    task = SUITES.get("vtab1k").task("eurosat")
    spec = BACKBONES.get("demo_vit")
    norm = record["protocol"]["normalisation"]
    batcher = DeviceBatcher(spec.input_size, resolve_normalisation(norm["name"], spec.mean, spec.std),
                            torch.device("cpu"), record["protocol"]["interpolation"], record["protocol"]["antialias"])
    model = _demo_vit(task.classes)
    train_x, train_y = extract_features(model, load_split(data, task, "train800val200"), batcher)
    test_x, test_y = extract_features(model, load_split(data, task, "test"), batcher)
    reference = LogisticRegression(max_iter=5000).fit(train_x.numpy(), train_y.numpy()).score(test_x.numpy(), test_y.numpy())
    assert record["metrics"]["top1"] >= 100 * reference - 1e-9, (record["metrics"]["top1"], reference)
    assert record["metrics"]["top1"] > 60  # far above the 45% of training through the train-mode backbone

    # A second seed reuses the cached features and the head solved for the first (it depends on the features only).
    result = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--tasks", "eurosat",
                                 "--seeds", "43", "--data-dir", str(data), "--results-dir", str(tmp_path / "results"),
                                 "--device", "cpu", "--protocol", "noah"])
    assert result.exit_code == 0, result.output
    again = json.loads(next((tmp_path / "results").rglob("seed43.json")).read_text())
    assert again["protocol"]["head_training"]["features_from_cache"] is True
    first, second = record["protocol"]["head_training"]["selection"], again["protocol"]["head_training"]["selection"]
    assert first["reused"] is False and first["converged"] is True and second["reused"] is True
    assert "every seed's record" in second["shared_by_seeds"] and second["selected"] == first["selected"]
    assert again["metrics"]["top1"] == record["metrics"]["top1"]


class FakeSplit:
    def __init__(self, count: int, sha: str):
        self.count, self.manifest = count, {"splits": {"test": {"images_sha256": sha}}}

    def __len__(self):
        return self.count


@pytest.mark.parametrize("change", ["re-prepared", "truncated", "wrong rows", "non-finite", "garbage meta"])
def test_cached_features_are_recomputed_when_the_data_or_the_cache_file_changed(tmp_path, change):
    from alore_bench.probe import FeatureCache

    cache = FeatureCache(tmp_path, "demo", "digits", {"backbone": "demo_vit"})
    computed = []

    def compute():
        computed.append(1)
        return torch.ones(4, 3)

    assert cache.load_or_compute("test", FakeSplit(4, "a" * 64), compute)[1] is False
    assert cache.load_or_compute("test", FakeSplit(4, "a" * 64), compute)[1] is True and len(computed) == 1
    data = FakeSplit(4, "a" * 64)
    if change == "re-prepared":  # same size, other images: the manifest's checksum differs
        data = FakeSplit(4, "b" * 64)
    elif change == "truncated":
        cache.path("test").write_bytes(cache.path("test").read_bytes()[:40])
    elif change == "wrong rows":
        np.save(cache.path("test"), np.ones((3, 3), dtype=np.float32))
    elif change == "non-finite":
        np.save(cache.path("test"), np.full((4, 3), np.nan, dtype=np.float32))
    else:
        (cache.folder / "test.json").write_text("{not json")
    features, hit = cache.load_or_compute("test", data, compute)
    assert hit is False and len(computed) == 2 and features.shape == (4, 3)
