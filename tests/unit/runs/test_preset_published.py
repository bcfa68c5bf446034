"""Presets that set what their published row was trained with (issue #20, item 3): the protocol,
the normalisation and the weight release; a run that overrides one says so once and records it."""

from __future__ import annotations

import dataclasses

import pytest

from alore_bench import api
from alore_bench.backbones import BACKBONES
from alore_bench.errors import python_style, render_fields
from alore_bench.presets import PRESETS, _parse
from alore_bench.runs.spec import preset_difference_lines
from alore_bench.runs.trial import preset_of

AUGREG = "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz"


def spec(preset="ssf_paper", suite="vtab1k", backbone="vit_b16", **kwargs):
    return api.build_spec("ssf", backbone, suite, preset=preset, device="cpu", **kwargs)


def lines(run_spec):
    return [render_fields(line, python_style) for line in preset_difference_lines(run_spec)]


def test_ssf_paper_alone_runs_ssfs_protocol_and_weights():
    # dongzelian/SSF: pre-made folders resized with bicubic (--direct-resize), 0.5/0.5 and the AugReg file.
    assert dict(PRESETS.get("ssf_paper").published) == {"protocol": "noah", "normalisation": "half",
                                                        "weights": "augreg"}
    plain = spec()
    assert (plain.train.protocol, plain.train.normalisation, plain.weights) == ("noah", "half", "augreg")
    assert plain.preset_differences == () and lines(plain) == []
    assert "protocol" not in plain.explicit and "normalisation" not in plain.explicit
    recorded = preset_of(plain)
    assert recorded["published"]["weights"] == "augreg" and "differences" not in recorded
    # Without the preset, SSF trains with the suite's protocol and the original weights.
    bare = api.build_spec("ssf", "vit_b16", "vtab1k", device="cpu")
    assert bare.weights is None and (bare.train.protocol, bare.train.normalisation) != ("noah", "half")


def test_ssf_fgvc_paper_sets_ssfs_fgvc_recipe_normalisation_and_weights():
    preset = PRESETS.get("ssf_fgvc_paper")
    assert preset.method == "ssf" and preset.suite == "fgvc"
    # train_scripts/vit/fgvc/<task>/train_ssf.sh: --lr per task, weight decay 0.05, 2 GPUs x 32.
    lrs = {task: preset.recipe_for(task)["lr"] for task in preset.tasks}
    assert lrs == {"cub200": 1e-2, "nabirds": 2e-4, "oxford_flowers": 1e-2, "stanford_dogs": 2.5e-4,
                   "stanford_cars": 2e-2}
    assert all(preset.recipe_for(t)["weight_decay"] == 0.05 and preset.recipe_for(t)["batch_size"] == 64
               for t in preset.tasks)
    fgvc = spec("ssf_fgvc_paper", "fgvc")
    assert (fgvc.train.normalisation, fgvc.weights) == ("half", "augreg")


def test_an_override_is_one_line_per_setting_and_recorded():
    changed = spec(protocol="vpt", weights="timm")
    assert changed.train.protocol == "vpt" and changed.train.normalisation == "half"  # the rest still SSF's
    assert changed.weights == "timm"
    assert lines(changed) == [
        "preset ssf_paper was published with protocol='noah'; this run uses protocol='vpt' "
        "(recorded as config.preset.differences)",
        "preset ssf_paper was published with weights='augreg'; this run uses weights='timm' "
        "(recorded as config.preset.differences)"]
    assert preset_of(changed)["differences"] == {"protocol": {"published": "noah", "run": "vpt"},
                                                 "weights": {"published": "augreg", "run": "timm"}}
    # The published value given explicitly, or the release's file by path, is no override.
    assert spec(protocol="noah", normalisation="half", weights="augreg").preset_differences == ()
    assert spec(weights=f"/somewhere/{AUGREG}").preset_differences == ()
    # The spec travels to workers and Ray with its differences.
    assert type(changed).from_dict(changed.to_dict()).preset_differences == changed.preset_differences


def test_a_backbone_without_the_release_keeps_its_weights_and_says_so():
    other = spec(backbone="vit_b16_mae")
    assert other.weights is None and preset_of(other)["differences"] == {
        "weights": {"published": "augreg", "run": "default"}}
    assert lines(other) == ["preset ssf_paper was published with weights='augreg'; this run uses the default "
                            "weights of vit_b16_mae, which has no augreg release (recorded as config.preset.differences)"]


def test_weights_dir_finds_the_presets_release_by_its_file_name(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    assert spec(weights_dir=folder).weights == str(folder.resolve() / AUGREG)
    assert spec(weights_dir=folder, weights="original").weights == str(folder.resolve() / "ViT-B_16.npz")


def test_the_override_line_is_said_once_per_command(env_data, tmp_path, monkeypatch):
    from alore_bench.execution import jobs

    heard = []
    monkeypatch.setattr(jobs, "preflight", lambda s: (_ for _ in ()).throw(RuntimeError("stop here")))
    with pytest.raises(RuntimeError, match="stop here"):
        api.tune("ssf", "vit_b16", "vtab1k", preset="ssf_paper", protocol="vpt", grid={"init_std": [0.01, 0.02]},
                 results_dir=tmp_path, say=heard.append)
    assert [render_fields(h, python_style) for h in heard] == [
        "preset ssf_paper was published with protocol='noah'; this run uses protocol='vpt' "
        "(recorded as config.preset.differences)"]


def test_published_settings_are_checked_when_presets_load():
    base = 'name = "x"\nmethod = "ssf"\nsuite = "vtab1k"\nsource = "s"\ndescription = "d"\n[tasks]\n'
    with pytest.raises(ValueError, match=r"\[published\]: unknown keys lr"):
        _parse(base + '[published]\nlr = "1"\n', "x.toml")
    with pytest.raises(ValueError, match="protocol 'tfds' is none of"):
        _parse(base + '[published]\nprotocol = "tfds"\n', "x.toml")
    with pytest.raises(Exception, match="normalisation"):
        _parse(base + '[published]\nnormalisation = "quarter"\n', "x.toml")
    # The published settings are part of what the preset's hash identifies.
    ssf = PRESETS.get("ssf_paper")
    assert ssf.describe()["sha"] != dataclasses.replace(ssf, published={}).describe()["sha"]
    assert BACKBONES.get("vit_b16").named_release(ssf.published["weights"]).file == AUGREG
