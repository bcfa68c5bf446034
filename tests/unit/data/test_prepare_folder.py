"""Importing the pre-made vtab-1k folder layout (NOAH's get_vtab1k.py) from a folder or a zip,
and the errors for bad copies: each one line, exit 2, nothing half-written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.suites import SUITES

runner = CliRunner()
VTAB = SUITES.get("vtab1k")


def make_premade(root: Path, folder: str, classes: int, counts: dict, size=(8, 8), seed=0) -> Path:
    """Write <root>/<folder>/ in the NOAH layout: JPEG q75 images and '<path> <label>' lists."""
    rng = np.random.default_rng(seed)
    task_root = root / folder
    for split, count in counts.items():
        (task_root / "images" / split).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            label = int(rng.integers(classes))
            pixels = np.full((*size, 3), label * 255 // max(classes - 1, 1), np.uint8)
            Image.fromarray(pixels).save(task_root / "images" / split / f"{i:06d}.jpg", quality=75)
            lines.append(f"images/{split}/{i:06d}.jpg {label}")
        (task_root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return task_root


SMALL = {"train800": 4, "val200": 2, "train800val200": 6, "test": 3}


def prepare(source: Path, data: Path, *extra: str):
    return runner.invoke(app, ["prepare", "--suite", "vtab1k", "--source", "folder", str(source),
                               "--data-dir", str(data), *extra])


def assert_nothing_written(data: Path, task: str):
    folder = data / "vtab1k"
    assert not (folder / task).exists()
    assert not folder.exists() or not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_full_size_folder_imports_with_official_counts_and_trains(tmp_path):
    kitti = VTAB.task("kitti")
    counts = {s: kitti.splits[s] for s in ("train800", "val200", "train800val200", "test")}
    make_premade(tmp_path / "vtab-1k", "kitti", kitti.classes, counts)
    data = tmp_path / "data"
    result = prepare(tmp_path / "vtab-1k", data, "--tasks", "kitti")
    assert result.exit_code == 0, result.output
    manifest = json.loads((data / "vtab1k" / "kitti" / "manifest.json").read_text())
    assert manifest["allow_mismatch"] is False and manifest["source"]["kind"] == "folder"
    assert manifest["splits"]["test"]["count"] == 711 and manifest["splits"]["test"]["image_shape"] == [8, 8, 3]
    labels = np.load(data / "vtab1k" / "kitti" / "test.labels.npy")
    images = np.load(data / "vtab1k" / "kitti" / "test.images.npy")
    # Each fixture image encodes its label in its grey level: images and labels stay paired.
    np.testing.assert_array_equal(np.round(images[:, 4, 4, 0] / 85.0).astype(int), labels)
    run = runner.invoke(app, ["run", "--method", "linear", "--backbone", "demo_vit", "--tasks", "kitti",
                              "--data-dir", str(data), "--results-dir", str(tmp_path / "r"), "--epochs", "1",
                              "--device", "cpu", "--protocol", "noah", "--opt", "solver=adamw"])
    assert run.exit_code == 0, run.output
    record = json.loads(next((tmp_path / "r").rglob("seed42.json")).read_text())
    assert record["metrics"]["eval_examples"] == 711 and record["protocol"]["data_source"]["kind"] == "folder"


def test_zip_with_top_folder_and_alias_name(tmp_path):
    make_premade(tmp_path / "vtab-1k", "cifar", 100, SMALL, size=(32, 32))
    archive = tmp_path / "vtab-1k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "vtab-1k").rglob("*")):
            zf.write(path, path.relative_to(tmp_path).as_posix())
    data = tmp_path / "data"
    result = prepare(archive, data, "--tasks", "cifar100", "--allow-mismatch")
    assert result.exit_code == 0, result.output
    manifest = json.loads((data / "vtab1k" / "cifar100" / "manifest.json").read_text())
    assert manifest["source"]["archive"] is True and manifest["source"]["task_folder"] == "vtab-1k/cifar"
    assert manifest["allow_mismatch"] is True


def test_mixed_sizes_are_stored_at_224(tmp_path):
    root = make_premade(tmp_path / "v", "dtd", 47, SMALL, size=(20, 30))
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(root / "images" / "test" / "000000.jpg")
    data = tmp_path / "data"
    assert prepare(tmp_path / "v", data, "--tasks", "dtd", "--allow-mismatch").exit_code == 0
    manifest = json.loads((data / "vtab1k" / "dtd" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["image_shape"] == [224, 224, 3]
    assert manifest["splits"]["train800"]["image_shape"] == [20, 30, 3]


def _break_corrupt_image(root):
    (root / "images" / "test" / "000001.jpg").write_bytes(b"not a jpeg at all")
    return "test.txt:2: image", "is unreadable"


def _break_malformed_line(root):
    (root / "val200.txt").write_text("images/val200/000000.jpg 1\nimages/val200/000001.jpg\n")
    return "val200.txt:2: expected '<relative image path> <integer label>'", ""


def _break_label_range(root):
    (root / "train800.txt").write_text("images/train800/000000.jpg 47\n")
    return "train800.txt:1: label 47 outside [0, 47)", ""


def _break_missing_split(root):
    (root / "test.txt").unlink()
    return "test.txt: split list missing", ""


def _break_escaping_path(root):
    (root / "test.txt").write_text("../../../etc/passwd 1\n")
    return "test.txt:1: image path '../../../etc/passwd' escapes the task folder", ""


def _break_missing_image(root):
    (root / "images" / "val200" / "000001.jpg").unlink()
    return "val200.txt:2: image", "does not exist"


def _break_symlink_out_of_root(root):
    secret = root.parent.parent / "secret.jpg"
    secret.write_bytes((root / "images" / "test" / "000000.jpg").read_bytes())
    target = root / "images" / "test" / "000001.jpg"
    target.unlink()
    target.symlink_to(secret)
    return "000001.jpg: a symlink leading outside", "refusing to read it"


def _break_fifo_in_place_of_an_image(root):
    import os

    target = root / "images" / "test" / "000002.jpg"
    target.unlink()
    os.mkfifo(target)  # reading it would block forever
    return "test.txt:3:", "not a regular file (a FIFO, device or folder); refusing to read it"


def _break_decompression_bomb(root):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)  # 60000 x 60000 RGB, declared only
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (root / "images" / "test" / "000000.jpg").write_bytes(png)
    return "test.txt:1: image", "decompression-bomb limit"


@pytest.mark.parametrize("breaker", [_break_corrupt_image, _break_malformed_line, _break_label_range,
                                     _break_missing_split, _break_escaping_path, _break_missing_image,
                                     _break_symlink_out_of_root, _break_fifo_in_place_of_an_image,
                                     _break_decompression_bomb])
def test_bad_copies_are_clear_errors(tmp_path, breaker):
    root = make_premade(tmp_path / "v", "dtd", 47, SMALL)
    first, second = breaker(root)
    data = tmp_path / "data"
    result = prepare(tmp_path / "v", data, "--tasks", "dtd", "--allow-mismatch")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert first in text and second in text and str(root) in text
    assert_nothing_written(data, "dtd")


def test_wrong_count_without_allow_mismatch(tmp_path):
    make_premade(tmp_path / "v", "dtd", 47, SMALL)
    result = prepare(tmp_path / "v", tmp_path / "data", "--tasks", "dtd")
    assert result.exit_code == 2
    assert "task vtab1k/dtd split train800: expected 800 examples, found 4" in " ".join(result.output.split())
    assert_nothing_written(tmp_path / "data", "dtd")


def test_zip_entry_escaping_the_root_is_rejected(tmp_path):
    make_premade(tmp_path / "v", "dtd", 47, SMALL)
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "v").rglob("*")):
            zf.write(path, path.relative_to(tmp_path / "v").as_posix())
        zf.writestr("../outside.txt", "x")
    result = prepare(archive, tmp_path / "data", "--tasks", "dtd", "--allow-mismatch")
    assert result.exit_code == 2
    assert "archive entry '../outside.txt' escapes the archive root" in " ".join(result.output.split())
    assert_nothing_written(tmp_path / "data", "dtd")


def test_zip_bombs_are_refused_before_they_are_expanded(tmp_path):
    make_premade(tmp_path / "v", "dtd", 47, SMALL)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((tmp_path / "v").rglob("*")):
            if path.name != "000000.jpg" or "test" not in path.parts:
                zf.write(path, path.relative_to(tmp_path / "v").as_posix())
        zf.writestr("dtd/images/test/000000.jpg", b"\0" * (8 * 2**20))  # 8 MiB of zeros: ratio ~1000
    result = prepare(archive, tmp_path / "data", "--tasks", "dtd", "--allow-mismatch")
    assert result.exit_code == 2 and "refusing it (limits:" in " ".join(result.output.split())
    assert_nothing_written(tmp_path / "data", "dtd")


def test_task_folder_missing(tmp_path):
    make_premade(tmp_path / "v", "dtd", 47, SMALL)
    result = prepare(tmp_path / "v", tmp_path / "data", "--tasks", "svhn")
    assert result.exit_code == 2 and "no task folder svhn" in result.output


def test_folder_data_runs_under_noah_by_default_and_an_explicit_mismatch_is_refused(tmp_path):
    """The common route: NOAH's pre-made folders, then `run` with no protocol flag. `auto` (the
    suites' default) picks noah from the data's source and says so in the record; the identity is
    the explicit `--protocol noah` one; an explicit `--protocol vpt` stays a one-line refusal."""
    dtd = VTAB.task("dtd")
    make_premade(tmp_path / "vtab-1k", "dtd", dtd.classes, {s: dtd.splits[s] for s in
                                                           ("train800", "val200", "train800val200", "test")})
    data = tmp_path / "data"
    assert prepare(tmp_path / "vtab-1k", data, "--tasks", "dtd").exit_code == 0
    base = ["run", "--method", "linear", "--backbone", "demo_vit", "--suite", "vtab1k", "--tasks", "dtd",
            "--data-dir", str(data), "--epochs", "1", "--device", "cpu", "--opt", "solver=adamw"]
    run = runner.invoke(app, base + ["--results-dir", str(tmp_path / "auto")])
    assert run.exit_code == 0, run.output
    record = json.loads(next((tmp_path / "auto").rglob("seed42.json")).read_text())
    assert record["protocol"]["protocol_choice"] == "auto -> noah" and record["config"]["train"]["protocol"] == "noah"
    assert record["protocol"]["interpolation"] == "bicubic"
    given = runner.invoke(app, base + ["--results-dir", str(tmp_path / "given"), "--protocol", "noah"])
    assert given.exit_code == 0, given.output
    explicit = json.loads(next((tmp_path / "given").rglob("seed42.json")).read_text())
    assert explicit["config_hash"] == record["config_hash"] and explicit["protocol"]["protocol_choice"] == "noah"
    refused = runner.invoke(app, base + ["--results-dir", str(tmp_path / "vpt"), "--protocol", "vpt"])
    assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
    assert "prepared from folder data, but --protocol vpt expects" in refused.output
