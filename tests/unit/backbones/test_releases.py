"""Weight releases (issue #20, item 2): `vit_b16` loads Google's original ViT-B_16.npz by default
and the AugReg in21k file with `--weights augreg`; each is recorded, listed and shown."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from alore_bench.backbones import BACKBONES
from alore_bench.cli import app
from alore_bench.errors import UserError

from tests.support.families import reference_model, tiny_spec, write_google_vit_npz

AUGREG = "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz"


def write_release(folder, file, seed, pre_logits):
    folder.mkdir(parents=True, exist_ok=True)
    reference = reference_model("vit_b16", seed)
    write_google_vit_npz(reference, folder / file, pre_logits=pre_logits)
    return reference


def test_vit_b16_names_its_two_published_files():
    spec = BACKBONES.get("vit_b16")
    releases = {r.name: r for r in spec.all_releases()}
    assert list(releases) == ["original", "augreg"]
    assert releases["original"].file == "ViT-B_16.npz" and releases["augreg"].file == AUGREG
    # SSF's vit_base_patch16_224_in21k (models/vision_transformer.py lines 121-123): the AugReg file.
    assert releases["augreg"].url == f"https://storage.googleapis.com/vit_models/augreg/{AUGREG}"
    assert releases["augreg"].tag == "vit_base_patch16_224.augreg_in21k"
    assert BACKBONES.get("vit_l16").named_release("augreg").file.startswith("L_16-i21k-300ep")
    assert BACKBONES.get("demo_vit").all_releases() == ()  # one file: nothing named, records unchanged


def test_each_release_resolves_loads_and_is_recorded_by_name(tmp_path):
    spec = tiny_spec("vit_b16")
    weights = tmp_path / "weights"
    original = write_release(weights, "ViT-B_16.npz", 1, pre_logits=True)
    augreg = write_release(weights, AUGREG, 2, pre_logits=False)
    default, named = spec.resolve_weights(None, tmp_path), spec.resolve_weights("augreg", tmp_path)
    assert default.release == "original" and default.location.endswith("ViT-B_16.npz")
    assert named.release == "augreg" and named.location.endswith(AUGREG) and named.sha256 != default.sha256
    assert spec.resolve_weights("original", tmp_path) == default
    # A path to the published file is that release too (known by its name).
    assert spec.resolve_weights(str(weights / AUGREG), tmp_path).release == "augreg"
    assert named.describe()["release"] == "augreg"
    for source, reference in ((default, original), (named, augreg)):
        model = spec.create(num_classes=5)
        spec.load_weights(model, source)
        loaded = model.state_dict()
        for key, value in reference.state_dict().items():
            if not key.startswith("head."):
                torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_a_missing_release_names_its_file_and_where_to_get_it(tmp_path):
    spec = tiny_spec("vit_b16")
    with pytest.raises(UserError, match=f"release augreg: pretrained weights {AUGREG} not found in .*weights; "
                                        f"download it from https://storage.googleapis.com/vit_models/augreg/"):
        spec.resolve_weights("augreg", tmp_path)
    with pytest.raises(UserError, match="has no release augreg1 .its releases: original, augreg"):
        spec.resolve_weights("augreg1", tmp_path)
    with pytest.raises(UserError, match="no such file"):  # a backbone without named releases
        BACKBONES.get("vit_b16_mae").resolve_weights("augreg", tmp_path)


def test_run_with_weights_augreg_records_the_release_and_the_report_shows_it(env_data, tmp_path):
    name = tiny_spec("vit_b16").name
    write_release(tmp_path / "weights", "ViT-B_16.npz", 1, pre_logits=True)
    write_release(tmp_path / "weights", AUGREG, 2, pre_logits=False)
    results = tmp_path / "results"
    for extra in ([], ["--weights", "augreg"]):
        result = CliRunner().invoke(app, [
            "run", "--method", "bitfit", "--backbone", name, "--suite", "demo", "--tasks", "digits", "--epochs", "1",
            "--device", "cpu", "--weights-dir", str(tmp_path / "weights"), "--results-dir", str(results), *extra])
        assert result.exit_code == 0, result.output
    records = [json.loads(p.read_text()) for p in results.rglob("seed42.json")]
    assert sorted(r["protocol"]["weights"]["release"] for r in records) == ["augreg", "original"]
    assert len({r["config_hash"] for r in records}) == 2  # another file, another configuration
    report = CliRunner().invoke(app, ["report", "--results-dir", str(results), "--format", "md"],
                                env={"COLUMNS": "400"})
    assert report.exit_code == 0, report.output
    assert f"weights={AUGREG}" in report.output and "weights=ViT-B_16.npz" in report.output


def test_list_backbones_names_both_files_and_whether_each_is_found(tmp_path):
    write_release(tmp_path / "weights", AUGREG, 0, pre_logits=False)
    result = CliRunner().invoke(app, ["list", "backbones", "--data-dir", str(tmp_path)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 5}
    assert "ViT-B_16.npz" in rows["vit_b16"] and rows["vit_b16"].rstrip(" │").endswith("no")
    assert "--weights original, the default" in rows["vit_b16"]
    augreg = rows["vit_b16 --weights augreg"]
    assert AUGREG in augreg and "vit_base_patch16_224.augreg_in21k" in augreg and augreg.rstrip(" │").endswith("yes")
