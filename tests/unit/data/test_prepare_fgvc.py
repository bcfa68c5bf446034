"""FGVC: VPT-style JSON splits beside image folders, the four TFDS builders under mock_data,
VPT's transforms (short side 256; random 224 crop + flip for training, centre crop for eval)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.cache import load_split
from alore_bench.data.fgvc_source import hold_out, resize_short_side
from alore_bench.data.loader import crop_batch
from alore_bench.data.suites import SUITES

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("tfds_online")  # mocked TFDS: no real download to guard
FGVC = SUITES.get("fgvc")


def make_vpt_dataset(root: Path, classes: int, per_split=None, image_root="images", first_id=1) -> Path:
    """A CUB-like folder: <root>/images/<class>/<n>.jpg and train/val/test.json (path -> class id).
    Class ids start at `first_id` (VPT's files are 1-based for CUB) and every class is in train."""
    per_split = per_split or {"train": classes, "val": 3, "test": 4}
    rng = np.random.default_rng(0)
    n = 0
    for split, count in per_split.items():
        mapping = {}
        for i in range(count):
            label = i % classes if split == "train" else int(rng.integers(classes))
            rel = f"{label:03d}.class/{n:05d}.jpg"
            path = root / image_root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            height, width = (300, 400) if n % 2 else (500, 260)
            Image.fromarray(np.full((height, width, 3), label % 256, np.uint8)).save(path, quality=90)
            mapping[rel] = label + first_id
            n += 1
        (root / f"{split}.json").write_text(json.dumps(mapping))
    return root


def prepare(*args):
    return runner.invoke(app, ["prepare", "--suite", "fgvc", *args])


def test_json_layout_imports_with_vpt_transforms_and_trains(tmp_path):
    make_vpt_dataset(tmp_path / "fgvc" / "CUB_200_2011", classes=200)
    data = tmp_path / "data"
    result = prepare("--source", "json", str(tmp_path / "fgvc"), "--tasks", "cub200", "--data-dir", str(data),
                     "--allow-mismatch")
    assert result.exit_code == 0, result.output
    task = FGVC.task("cub200")
    manifest = json.loads((data / "fgvc" / "cub200" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "json" and manifest["splits"]["train"]["image_shape"] == "varying"
    assert manifest["splits"]["train"]["min_side"] == 256
    assert manifest["splits"]["test"]["image_shape"] == [224, 224, 3]
    train = load_split(data, task, "train")
    assert train.ragged and len(train) == 200
    assert sorted(train.labels.tolist()) == list(range(200))  # 1-based ids mapped to 0..199
    assert {tuple(s) for s in train.shapes} == {(256, 341, 3), (492, 256, 3)}
    # Every image carries its label as grey level: still paired after remapping and storage.
    assert all(int(train.image(i)[100, 100, 0]) == int(train.labels[i]) % 256 for i in range(len(train)))

    run = runner.invoke(app, ["run", "--method", "lora", "--backbone", "demo_vit", "--suite", "fgvc", "--tasks",
                              "cub200", "--data-dir", str(data), "--results-dir", str(tmp_path / "r"),
                              "--epochs", "1", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    record = json.loads(next((tmp_path / "r").rglob("seed42.json")).read_text())
    assert record["protocol"]["augment"] == "vpt_random_crop_flip"
    assert (record["protocol"]["train_split"], record["protocol"]["eval_split"]) == ("train", "test")


@pytest.mark.parametrize("breaker,needle", [
    (lambda root: (root / "val.json").unlink(), "val.json: split file missing"),
    (lambda root: (root / "test.json").write_text('{"../../x.jpg": 1}'), "escapes the dataset's image folder"),
    (lambda root: (root / "test.json").write_text("[1, 2]"), "expected a JSON object"),
    (lambda root: (root / "train.json").write_text('{"001.class/00000.jpg": 1}'), "the split files hold"),
    (lambda root: next((root / "images").rglob("*.jpg")).write_bytes(b"broken"), "is unreadable"),
])
def test_bad_json_layouts(tmp_path, breaker, needle):
    root = make_vpt_dataset(tmp_path / "fgvc" / "cub200", classes=200)
    breaker(root)
    result = prepare("--source", "json", str(tmp_path / "fgvc"), "--tasks", "cub200", "--data-dir",
                     str(tmp_path / "data"), "--allow-mismatch")
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split())
    assert not (tmp_path / "data" / "fgvc" / "cub200").exists()


def test_tfds_builders_under_mock_data(tmp_path):
    data = tmp_path / "data"
    with tfds.testing.mock_data(num_examples=10):
        result = prepare("--source", "tfds", "--data-dir", str(data), "--allow-mismatch")
    assert result.exit_code == 1, result.output  # NABirds has no TFDS builder: reported, not faked
    text = " ".join(result.output.split())
    assert "4 prepared" in text and "cannot prepare fgvc/nabirds here: no TFDS builder exists for it" in text
    assert text.count("no TFDS builder exists") == 1 and "1 not prepared (nabirds: the reasons are above)" in text
    assert "--source archive DIR" in text  # the route that needs no dead JSON links
    for name in ("cub200", "oxford_flowers", "stanford_dogs", "stanford_cars"):
        manifest = json.loads((data / "fgvc" / name / "manifest.json").read_text())
        counts = {s: manifest["splits"][s]["count"] for s in ("train", "val", "test")}
        if name == "oxford_flowers":
            assert counts == {"train": 10, "val": 10, "test": 10} and "official" in manifest["source"]["val"]
        else:  # a seeded ceil(10%) of the official train becomes val
            assert counts == {"train": 9, "val": 1, "test": 10} and "not VPT's exact" in manifest["source"]["val"]
        assert manifest["splits"]["train"]["min_side"] == 256
    results = tmp_path / "results"
    run = runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "fgvc",
                              "--tasks", "cub200,oxford_flowers,stanford_dogs,stanford_cars", "--data-dir", str(data),
                              "--results-dir", str(results), "--epochs", "1", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    records = [json.loads(p.read_text()) for p in results.rglob("seed42.json")]
    assert len(records) == 4 and all(r["metrics"]["eval_examples"] == 10 for r in records)


def test_hold_out_matches_vpt_sizes():
    for total, val in [(5994, 600), (23929, 2393), (12000, 1200), (8144, 815)]:
        train_idx, val_idx = hold_out(total)
        assert len(val_idx) == val and len(train_idx) == total - val
        assert not set(train_idx) & set(val_idx)
    assert (hold_out(100)[1] == hold_out(100)[1]).all()


def test_resize_short_side_like_torchvision():
    assert resize_short_side(np.zeros((375, 500, 3), np.uint8)).shape == (256, 341, 3)
    assert resize_short_side(np.zeros((500, 260, 3), np.uint8)).shape == (492, 256, 3)


def test_training_crops_are_random_and_eval_crops_central(tmp_path):
    make_vpt_dataset(tmp_path / "fgvc" / "cub200", classes=200)
    data = tmp_path / "data"
    assert prepare("--source", "json", str(tmp_path / "fgvc"), "--tasks", "cub200", "--data-dir", str(data),
                   "--allow-mismatch").exit_code == 0
    train = load_split(data, FGVC.task("cub200"), "train")
    # Replace the pixels by coordinates so crop positions become visible.
    image = train.image(0)
    idx = np.zeros(16, np.int64)
    grid = np.zeros_like(image)
    grid[..., 0] = (np.arange(image.shape[0]) % 256)[:, None]
    grid[..., 1] = (np.arange(image.shape[1]) % 256)[None, :]
    flat = np.array(train.images)
    flat[:image.size] = grid.reshape(-1)
    split = type(train)(train.task, "train", flat, train.labels, train.manifest, train.shapes)
    centre = crop_batch(split, idx[:1], None)[0]
    h, w = image.shape[:2]
    assert centre[0, 0, 0] == (h - 224) // 2 % 256 and centre[0, 0, 1] == (w - 224) // 2 % 256
    crops = crop_batch(split, idx, np.random.default_rng(0))
    starts = {(int(c[0, 0, 0]), int(min(c[0, 0, 1], c[0, -1, 1]))) for c in crops}
    assert len(starts) > 1  # random positions
    flipped = [c[0, 0, 1] > c[0, -1, 1] for c in crops]
    assert any(flipped) and not all(flipped)
    again = crop_batch(split, idx, np.random.default_rng(0))
    assert (again == crops).all()
