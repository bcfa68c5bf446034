"""FGVC from the original archives: tiny fixtures in each dataset's exact published layout (file
names, list formats, .mat structures written with scipy.io.savemat, CUB's and NABirds' text files),
prepared through `prepare --suite fgvc --source archive DIR`, then trained on end to end."""

from __future__ import annotations

import io
import json
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.cache import read_manifest
from alore_bench.data.suites import SUITES

runner = CliRunner()
FGVC = SUITES.get("fgvc")


def jpeg(seed: int, size=(40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def write_tar(path: Path, files: dict) -> None:
    """A tar archive (gzip for .tgz / .tar.gz) of {member path: bytes}."""
    mode = "w:gz" if path.name.endswith(("gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def lines(rows) -> bytes:
    return ("\n".join(" ".join(map(str, row)) for row in rows) + "\n").encode()


def cub(directory: Path, per_class: int = 2, classes=(1, 2, 200)):
    files, images, labels, split = {}, [], [], []
    number = 0
    for c in classes:
        for k in range(per_class * 2):
            number += 1
            rel = f"{c:03d}.Bird_{c}/Bird_{c}_{k:04d}_{number}.jpg"
            files[f"CUB_200_2011/images/{rel}"] = jpeg(number)
            images.append((number, rel))
            labels.append((number, c))
            split.append((number, int(k < per_class)))
    files["CUB_200_2011/images.txt"] = lines(images)
    files["CUB_200_2011/image_class_labels.txt"] = lines(labels)
    files["CUB_200_2011/train_test_split.txt"] = lines(split)
    files["CUB_200_2011/classes.txt"] = lines([(c, f"{c:03d}.Bird_{c}") for c in classes])
    write_tar(directory / "CUB_200_2011.tgz", files)
    return sum(s for _i, s in split), len(split) - sum(s for _i, s in split)


def nabirds(directory: Path):
    """555 classes in use out of a hierarchy with more ids (parents such as 0 'Birds'), UUID ids."""
    used = list(range(295, 295 + 555))
    files, images, labels, split = {}, [], [], []
    for n, c in enumerate(used):
        for train in (1, 0):
            uid = f"{n:08x}-0000-4000-8000-{train:012x}"
            rel = f"{c:04d}/{uid.replace('-', '')}.jpg"
            files[f"nabirds/images/{rel}"] = jpeg(n * 2 + train, size=(8, 8))
            images.append((uid, rel))
            labels.append((uid, c))
            split.append((uid, train))
    files["nabirds/images.txt"] = lines(images)
    files["nabirds/image_class_labels.txt"] = lines(labels)
    files["nabirds/train_test_split.txt"] = lines(split)
    files["nabirds/classes.txt"] = lines([(0, "Birds"), (1, "Ducks, Geese, and Swans")] + [(c, f"Species {c}") for c in used])
    write_tar(directory / "nabirds.tar.gz", files)
    return 555, 555


def flowers(directory: Path, count: int = 12):
    write_tar(directory / "102flowers.tgz", {f"jpg/image_{i:05d}.jpg": jpeg(1000 + i) for i in range(1, count + 1)})
    sio.savemat(directory / "imagelabels.mat", {"labels": np.array([[1 + (i % 102) for i in range(count)]])})
    ids = np.arange(1, count + 1)
    sio.savemat(directory / "setid.mat", {"trnid": ids[None, :4], "valid": ids[None, 4:7], "tstid": ids[None, 7:]})
    return 4, 3, count - 7


def dogs(directory: Path):
    def table(names, labels):
        cells = np.empty((len(names), 1), dtype=object)
        for i, name in enumerate(names):
            cells[i, 0] = np.array([name])
        return {"file_list": cells, "annotation_list": cells, "labels": np.array(labels, dtype=np.uint8)[:, None]}

    breeds = ["n02085620-Chihuahua", "n02116738-African_hunting_dog"]
    train = [f"{b}/{b.split('-')[0]}_{k}.jpg" for b in breeds for k in range(5)]
    test = [f"{b}/{b.split('-')[0]}_{k}.jpg" for b in breeds for k in range(5, 7)]
    write_tar(directory / "images.tar", {f"Images/{rel}": jpeg(2000 + i) for i, rel in enumerate(train + test)})
    lists = directory / "lists"
    lists.mkdir()
    sio.savemat(lists / "train_list.mat", table(train, [1] * 5 + [120] * 5))
    sio.savemat(lists / "test_list.mat", table(test, [1] * 2 + [120] * 2))
    write_tar(directory / "lists.tar", {name: (lists / name).read_bytes() for name in ("train_list.mat", "test_list.mat")})
    for name in ("train_list.mat", "test_list.mat"):
        (lists / name).unlink()
    lists.rmdir()
    return len(train), len(test)


def cars_annotations(path: Path, count: int, first_class: int = 1):
    records = np.zeros((1, count), dtype=[(f, "O") for f in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")])
    for i in range(count):
        records[0, i] = (np.array([[1]]), np.array([[2]]), np.array([[30]]), np.array([[20]]),
                         np.array([[first_class + (i % 3) * 97]], dtype=np.uint8), np.array([f"{i + 1:05d}.jpg"]))
    sio.savemat(path, {"annotations": records})


def cars(directory: Path, nested: bool = False):
    """The devkit's annotation files and the image folders: archives, or (nested=True) the common
    mirrors' extracted layout cars_train/cars_train/00001.jpg with the devkit in devkit/."""
    train, test = 9, 4
    if nested:
        for split, count in (("train", train), ("test", test)):
            folder = directory / f"cars_{split}" / f"cars_{split}"
            folder.mkdir(parents=True)
            for i in range(1, count + 1):
                (folder / f"{i:05d}.jpg").write_bytes(jpeg(3000 + i + (100 if split == "test" else 0)))
        (directory / "devkit").mkdir()
        cars_annotations(directory / "devkit" / "cars_train_annos.mat", train)
    else:
        for split, count in (("train", train), ("test", test)):
            write_tar(directory / f"cars_{split}.tgz", {f"cars_{split}/{i:05d}.jpg": jpeg(3000 + i) for i in range(1, count + 1)})
        cars_annotations(directory / "cars_train_annos.mat", train)
    cars_annotations(directory / "cars_test_annos_withlabels.mat", test)
    return train, test


def prepare(directory: Path, data: Path, tasks: str = "cub200,nabirds,oxford_flowers,stanford_dogs,stanford_cars"):
    return runner.invoke(app, ["prepare", "--suite", "fgvc", "--source", "archive", str(directory), "--tasks", tasks,
                               "--data-dir", str(data), "--allow-mismatch"])


def counts(data: Path, task: str) -> dict:
    manifest = read_manifest(data, FGVC.select([task])[0])
    return {split: facts["count"] for split, facts in manifest["splits"].items()}


@pytest.mark.slow
def test_all_five_prepare_from_their_published_layouts_then_alore_trains(tmp_path, monkeypatch):
    archives, data = tmp_path / "archives", tmp_path / "data"
    archives.mkdir()
    cub_train, cub_test = cub(archives)
    nab_train, nab_test = nabirds(archives)
    flowers_split = flowers(archives)
    dogs_train, dogs_test = dogs(archives)
    cars_train, cars_test = cars(archives)
    result = prepare(archives, data)
    assert result.exit_code == 0, result.output
    for task, train, test in (("cub200", cub_train, cub_test), ("nabirds", nab_train, nab_test),
                              ("stanford_dogs", dogs_train, dogs_test), ("stanford_cars", cars_train, cars_test)):
        held = math.ceil(train * 0.1)  # the TFDS route's rule, which gives VPT's sizes on the real data
        assert counts(data, task) == {"train": train - held, "val": held, "test": test}, task
    assert counts(data, "oxford_flowers") == dict(zip(("train", "val", "test"), flowers_split))  # official val
    manifest = read_manifest(data, FGVC.select(["nabirds"])[0])
    assert manifest["source"]["kind"] == "archive" and "ceil(10%)" in manifest["source"]["val"]
    assert manifest["source"]["class_ids"].startswith("the class ids in use")
    assert not list((data / "fgvc").glob(".*archives.tmp-*"))  # extraction folders removed
    # CUB's labels: class id - 1 (ids 1, 2 and 200 -> 0, 1, 199).
    from alore_bench.data.cache import load_split

    labels = load_split(data, FGVC.select(["cub200"])[0], "test").labels
    assert sorted(set(labels.tolist())) == [0, 1, 199]
    results = tmp_path / "results"
    run = runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--suite", "fgvc", "--tasks",
                              "cub200", "--epochs", "1", "--batch-size", "8", "--device", "cpu",
                              "--data-dir", str(data), "--results-dir", str(results)])
    assert run.exit_code == 0, run.output
    (record,) = results.rglob("seed42.json")
    record = json.loads(record.read_text())
    assert record["status"] == "ok" and record["protocol"]["data_source"]["kind"] == "archive"


def test_the_mirrors_extracted_cars_layout(tmp_path):
    archives, data = tmp_path / "archives", tmp_path / "data"
    archives.mkdir()
    train, test = cars(archives, nested=True)
    result = prepare(archives, data, "stanford_cars")
    assert result.exit_code == 0, result.output
    held = math.ceil(train * 0.1)
    assert counts(data, "stanford_cars") == {"train": train - held, "val": held, "test": test}


def test_a_missing_archive_is_one_line_naming_it_and_the_others_are_prepared(tmp_path):
    archives, data = tmp_path / "archives", tmp_path / "data"
    archives.mkdir()
    flowers(archives)
    (archives / "setid.mat").unlink()
    cub(archives)
    result = prepare(archives, data, "oxford_flowers,cub200,stanford_dogs")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"cannot prepare fgvc/oxford_flowers here: setid.mat not found in {archives}" in text
    assert text.count("setid.mat not found") == 1  # each failure is said once, the summary names it
    assert f"cannot prepare fgvc/stanford_dogs here: lists.tar (or train_list.mat and test_list.mat) not found in {archives}" in text
    assert "1 prepared" in text and (data / "fgvc" / "cub200" / "manifest.json").exists()


def test_tampered_lists_are_one_line_naming_file_and_line(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    cub(archives)
    extracted = tmp_path / "extracted"
    with tarfile.open(archives / "CUB_200_2011.tgz") as tar:
        tar.extractall(extracted, filter="data")
    (archives / "CUB_200_2011.tgz").unlink()
    labels = extracted / "CUB_200_2011" / "image_class_labels.txt"
    rows = labels.read_text().splitlines()
    rows[4] = rows[4].split()[0] + " 201"  # a label out of range
    labels.write_text("\n".join(rows) + "\n")
    result = prepare(extracted, tmp_path / "data", "cub200")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == f"error: {labels} line 5: class id 201 out of range 1..200"
    rows[4] = "999 1"  # an image id that does not exist
    labels.write_text("\n".join(rows) + "\n")
    result = prepare(extracted, tmp_path / "data", "cub200")
    assert f"{labels} line 5: image id 999 is not in images.txt" in " ".join(result.output.split())
    # A .mat entry out of range names the file and the entry.
    flowers(archives)
    sio.savemat(archives / "imagelabels.mat", {"labels": np.array([[1] * 5 + [103] + [1] * 6])})
    result = prepare(archives, tmp_path / "data", "oxford_flowers")
    assert result.exit_code == 2
    assert f"{archives / 'imagelabels.mat'} entry 6: label 103 out of range 1..102" in " ".join(result.output.split())


def test_an_archive_member_escaping_the_root_is_refused(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    write_tar(archives / "CUB_200_2011.tgz", {"CUB_200_2011/images.txt": b"1 a.jpg\n", "../../evil.txt": b"x"})
    result = prepare(archives, tmp_path / "data", "cub200")
    assert result.exit_code == 2
    assert "escapes the archive root" in " ".join(result.output.split())
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))


def hostile_tar(path: Path, kind: str) -> None:
    """CUB's archive with one hostile member (or, for 'truncated', cut in the middle)."""
    good = {"CUB_200_2011/images.txt": b"1 a.jpg\n", "CUB_200_2011/images/a.jpg": jpeg(1)}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in good.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo({"absolute": "/tmp/alore-evil.txt", "dotdot": "CUB_200_2011/../../evil.txt"}.get(
            kind, f"CUB_200_2011/{kind}"))
        if kind in ("absolute", "dotdot", "big"):
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
        elif kind in ("symlink", "hardlink"):
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        elif kind in ("device", "fifo"):
            info.type = tarfile.CHRTYPE if kind == "device" else tarfile.FIFOTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
        elif kind == "many":
            for i in range(12):
                member = tarfile.TarInfo(f"CUB_200_2011/images/{i}.jpg")
                tar.addfile(member, io.BytesIO(b""))
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) * 2 // 3])
    if kind == "trailer":  # only the gzip trailer (CRC, size) lost: tarfile alone would not notice
        path.write_bytes(path.read_bytes()[:-8])


@pytest.mark.parametrize("kind, reason", [
    ("dotdot", "escapes the archive root"), ("absolute", "escapes the archive root"),
    ("symlink", "link or special file"), ("hardlink", "link or special file"), ("device", "link or special file"),
    ("fifo", "link or special file"), ("many", "more than 10 members"), ("big", "over the limits"),
    ("truncated", "not a readable tar archive"), ("trailer", "not a readable tar archive"),
])
def test_a_hostile_archive_is_refused_in_one_line_and_leaves_nothing(tmp_path, monkeypatch, kind, reason):
    from alore_bench.data import fgvc_archives

    monkeypatch.setattr(fgvc_archives, "MAX_MEMBERS", 10)
    monkeypatch.setattr(fgvc_archives, "MAX_FILE_BYTES", 2 if kind == "big" else fgvc_archives.MAX_FILE_BYTES)
    archives = tmp_path / "archives"
    archives.mkdir()
    hostile_tar(archives / "CUB_200_2011.tgz", kind)
    result = prepare(archives, tmp_path / "data", "cub200")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    text = " ".join(result.output.split())
    assert reason in text and str(archives / "CUB_200_2011.tgz") in text and "Traceback" not in result.output
    assert len(lines) <= 2  # the one line, wrapped at most once
    assert not Path("/tmp/alore-evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))
    assert not list((tmp_path / "data").rglob("*archives.tmp*"))  # the staging folder is gone
    assert not (tmp_path / "data" / "fgvc" / "cub200" / "manifest.json").exists()
