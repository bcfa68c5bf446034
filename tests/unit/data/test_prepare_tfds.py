"""The real TFDS builders of all 19 VTAB-1k tasks, through tfds.testing.mock_data (no download,
no TensorFlow), into the cache; then `alore-bench run` trains on what they produce."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import dataset_builder
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.suites import SUITES
from alore_bench.network import unreachable_hosts as REAL_UNREACHABLE

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("tfds_online")  # mocked TFDS: no real download to guard
VTAB = SUITES.get("vtab1k")
MOCK_EXAMPLES = 6


class RealisticSource:
    """Mocked records made consistent the way real ones are: mock_data draws every sequence
    feature's length independently (CLEVR scenes of 5-49 objects, KITTI with more types than
    locations), which real CLEVR (3-10 objects) and KITTI records never are."""

    def __init__(self, source, name: str):
        self.source, self.name = source, name

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        example = dict(self.source[index])
        objects = dict(example.get("objects", {}))
        if self.name == "clevr":
            keep = 3 + index % 8
            objects = {k: np.asarray(v)[:keep] for k, v in objects.items()}
            objects["pixel_coords"] = np.asarray(objects["pixel_coords"], np.float32).copy()
            objects["pixel_coords"][:, 2] = 7.5 + (index % 6) * 0.5  # spread over the distance bins
        if self.name == "kitti":
            keep = min(len(objects["type"]), len(objects["location"]))
            objects = {k: np.asarray(v)[:keep] for k, v in objects.items()}
        if objects:
            example["objects"] = objects
        return example


@pytest.fixture
def mocked_tfds(monkeypatch):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        mocked = dataset_builder.DatasetBuilder.as_data_source

        def realistic(self, split, *args, **kwargs):
            return RealisticSource(mocked(self, split, *args, **kwargs), self.name)

        monkeypatch.setattr(dataset_builder.DatasetBuilder, "as_data_source", realistic)
        yield


def manual_files(root):
    for task in VTAB.tasks:
        for name in task.manual_files:
            folder = root / "manual" / task.tfds.split(":")[0].split("/")[0]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("placeholder")


def test_all_19_vtab_builders_prepare_and_train(mocked_tfds, tmp_path):
    data = tmp_path / "data"
    manual_files(data)
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--data-dir", str(data), "--allow-mismatch"])
    assert result.exit_code == 0, result.output
    assert "19 prepared" in result.output
    for task in VTAB.tasks:
        manifest = json.loads((data / "vtab1k" / task.name / "manifest.json").read_text())
        assert manifest["allow_mismatch"] is True and manifest["source"]["kind"] == "tfds"
        assert manifest["source"]["spec"] == task.tfds
        splits = manifest["splits"]
        assert [splits[s]["count"] for s in ("train800", "val200", "train800val200", "test")] == [6, 6, 12, 6]
        assert splits["test"]["expected_count"] == task.splits["test"]
        height, width, channels = splits["test"]["image_shape"]
        assert channels == 3 and height <= 224 and width <= 224
        labels = np.load(data / "vtab1k" / task.name / "train800val200.labels.npy")
        assert labels.min() >= 0 and labels.max() < task.classes
    # Pets is built at 4.0.0 and says so; dmlab's 360 x 480 frames are stored at 224 x 224.
    pets = json.loads((data / "vtab1k" / "oxford_iiit_pet" / "manifest.json").read_text())
    assert pets["source"]["version"] == "4.0.0" and "3.2.0" in pets["source"]["notes"]
    dmlab = json.loads((data / "vtab1k" / "dmlab" / "manifest.json").read_text())
    assert dmlab["splits"]["test"]["image_shape"] == [224, 224, 3]
    cifar = json.loads((data / "vtab1k" / "cifar100" / "manifest.json").read_text())
    assert cifar["splits"]["test"]["image_shape"] == [32, 32, 3]

    results = tmp_path / "results"
    run = runner.invoke(app, ["run", "--method", "alore", "--backbone", "demo_vit", "--data-dir", str(data),
                              "--results-dir", str(results), "--epochs", "1", "--device", "cpu"])
    assert run.exit_code == 0, run.output
    records = [json.loads(p.read_text()) for p in results.rglob("seed42.json")]
    assert len(records) == 19 and all(r["status"] == "ok" for r in records)
    assert all(r["protocol"]["data_allow_mismatch"] and r["protocol"]["data_source"]["kind"] == "tfds" for r in records)
    report = runner.invoke(app, ["report", "--results-dir", str(results), "--format", "csv"])
    assert report.exit_code == 0 and ",structured_mean," in report.output


def test_mock_sizes_are_rejected_without_allow_mismatch(mocked_tfds, tmp_path):
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--tasks", "dtd", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "task vtab1k/dtd split train800: expected 800 examples, found 6" in " ".join(result.output.split())
    assert not (tmp_path / "vtab1k" / "dtd").exists() and not list((tmp_path / "vtab1k").glob(".dtd*"))


def test_raw_mock_clevr_scene_is_an_error_naming_the_record(tmp_path):
    with tfds.testing.mock_data(num_examples=3):
        result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--tasks", "clevr_count", "--data-dir",
                                     str(tmp_path), "--allow-mismatch"])
    assert result.exit_code == 2
    assert "task clevr_count split train800 (train[:800]) record 0" in " ".join(result.output.split())


def test_missing_manual_download_says_where_and_continues(mocked_tfds, tmp_path):
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--tasks", "resisc45,eurosat", "--data-dir",
                                 str(tmp_path), "--allow-mismatch"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"put NWPU-RESISC45.rar into {tmp_path / 'manual' / 'resisc45'}" in text
    assert "1 prepared" in text and "1 not prepared" in text
    assert (tmp_path / "vtab1k" / "eurosat" / "manifest.json").exists()
    assert not (tmp_path / "vtab1k" / "resisc45").exists()


def test_prepared_tasks_are_skipped_unless_forced(mocked_tfds, tmp_path):
    args = ["prepare", "--suite", "vtab1k", "--tasks", "svhn", "--data-dir", str(tmp_path), "--allow-mismatch"]
    assert runner.invoke(app, args).exit_code == 0
    assert "already prepared" in runner.invoke(app, args).output
    assert "prepared vtab1k/svhn" in runner.invoke(app, args + ["--force"]).output


def test_tensorflow_builders_name_the_vtab_extra_and_the_others_go_on(mocked_tfds, tmp_path, monkeypatch):
    from alore_bench.data import tfds_source

    monkeypatch.setattr(tfds_source, "tensorflow_missing", lambda: True)
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--tasks", "svhn,dtd", "--data-dir", str(tmp_path),
                                 "--allow-mismatch"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "vtab1k/svhn here: TFDS needs TensorFlow to generate svhn_cropped" in text and "alore-bench[vtab]" in text
    assert (tmp_path / "vtab1k" / "dtd" / "manifest.json").exists()


def test_an_unreachable_download_host_fails_fast_naming_it(mocked_tfds, tmp_path, monkeypatch):
    import socket

    from alore_bench import network

    def refuse(address, timeout=None):
        raise OSError("no route to host")

    monkeypatch.setattr(network, "unreachable_hosts", REAL_UNREACHABLE)  # the real probe, on a dead network
    monkeypatch.setattr(socket, "create_connection", refuse)
    result = runner.invoke(app, ["prepare", "--suite", "vtab1k", "--tasks", "dtd", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "cannot prepare vtab1k/dtd here: cannot reach www.robots.ox.ac.uk to download dtd" in text and "--source folder PATH" in text



def test_offline_advice_names_the_routes_the_suite_accepts():
    from alore_bench.data.tfds_source import offline_routes

    fgvc = offline_routes(SUITES.get("fgvc").tasks[0])
    assert "--source json PATH" in fgvc and "--source archive DIR" in fgvc
    assert "folder" not in fgvc  # FGVC refuses --source folder: advice to use it would fail as written
    assert offline_routes(VTAB.tasks[0]) == "import a pre-made copy with --source folder PATH"
