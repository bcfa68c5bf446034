"""The run spec: one builder, frozen, JSON round trip, every input checked before the world is
looked at, and the identities (config hashes) records have always been filed under."""

from __future__ import annotations

import dataclasses
import json

import pytest

from alore_bench.errors import UserError
from alore_bench.runs.record import spec_identity
from alore_bench.runs.spec import RunSpec, build_spec, parse_seeds, resolve_protocol
from alore_bench.config import stable_hash
from alore_bench.tuning import make_grid

CPU = {"device": "cpu", "precision": "fp32"}


def demo_identity(spec):
    spec = resolve_protocol(spec, {task: "generated" for task in spec.tasks})  # as preflight does for the demo
    source = spec.backbone_spec.resolve_weights(spec.weights, spec.data_dir)
    return stable_hash(spec_identity(spec, source.describe(), CPU))


@pytest.mark.parametrize("method, config_hash", [("lora", "6ac7fc026d"), ("alore", "f4f6f090bf"),
                                                 ("full", "14e8077161"), ("linear", "f5e605f576")])
def test_the_demo_config_hashes_are_the_ones_records_were_filed_under(method, config_hash, tmp_path):
    # The README's demo table names these hashes: a redesign must not move a record (LoRA moved on
    # purpose in #20: its default init is NOAH's, a new option in its config).
    spec = build_spec(method, "demo_vit", "demo", device="cpu", data_dir=tmp_path)
    assert demo_identity(spec) == config_hash


def test_a_spec_is_frozen_and_round_trips_through_json(tmp_path):
    grid = make_grid({"lr": [1e-3, 1e-2], "scale": [1.0, 10.0]}, build_spec("alore", "demo_vit", "demo").method_spec,
                     "test")
    spec = build_spec("alore", "demo_vit", "demo", tasks="digits,textures", seeds="vpt3", options={"rank": 4},
                      recipe={"epochs": 3}, data_dir=tmp_path, results_dir=tmp_path / "r", device="cpu", grid=grid,
                      grid_index=3, variant="v")
    wire = json.loads(json.dumps(spec.to_dict()))
    assert RunSpec.from_dict(wire) == spec and RunSpec.from_dict(wire).to_dict() == wire
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seeds = (1,)
    assert spec.point == {"lr": 1e-2, "scale": 10.0}
    assert spec.train.lr == 1e-2 and spec.method_config.scale == 10.0 and spec.method_config.rank == 4
    assert spec.stage == "tune" and not spec.use_tuned and spec.explicit == frozenset({"epochs", "rank"})
    assert spec.tasks == ("digits", "textures") and spec.seeds == (42, 44, 82)
    assert [(j.task, j.seed) for j in spec.jobs()][:2] == [("digits", 42), ("digits", 44)]


def test_every_input_is_checked_by_the_builder(tmp_path):
    build = lambda **kw: build_spec("alore", "demo_vit", "demo", data_dir=tmp_path, device="cpu", **kw)  # noqa: E731
    with pytest.raises(UserError, match=r"lr must lie in \(0, 1000\]"):
        build(recipe={"lr": -1})
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        build(recipe={"epoch": 3})
    with pytest.raises(UserError, match="did you mean 'rank'"):
        build(options={"rnak": 2})
    with pytest.raises(UserError, match="did you mean 'digits'"):
        build(tasks=["digit"])
    with pytest.raises(UserError, match="tasks=',': give at least one name"):
        build(tasks=",")
    with pytest.raises(UserError, match="checkpoint_every=-1"):
        build(checkpoint_every=-1)
    with pytest.raises(UserError, match=r"eval_batch_size=0: give a number of images in \[1, 8192\]"):
        build(eval_batch_size=0)
    with pytest.raises(UserError, match="unknown log 'tb'"):
        build(log=["tb"])
    grid = make_grid({"lr": [1e-3, 1e-2]}, build().method_spec, "test")
    with pytest.raises(UserError, match="lr is given both as a fixed value and in grid"):
        build(recipe={"lr": 1e-3}, grid=grid, grid_index=0)
    with pytest.raises(UserError, match="grid_index=2: not a point of the grid"):
        build(grid=grid, grid_index=2)


def test_seeds_accept_a_named_set_a_string_an_integer_or_a_list():
    assert parse_seeds("vpt5") == (42, 44, 82, 100, 800)
    assert parse_seeds("42, 44,42") == (42, 44)
    assert parse_seeds(7) == (7,) and parse_seeds([3, 1, 3]) == (3, 1)
    for bad, needle in (("a", "expected comma-separated integers"), ([], "at least one seed"),
                        ([2**32], r"\[0, 2\^32\)"), ([True], "expected integers")):
        with pytest.raises(UserError, match=needle):
            parse_seeds(bad)


def test_a_preset_that_sets_a_recipe_key_refuses_the_same_key_given_explicitly(tmp_path):
    with pytest.raises(UserError, match="preset=.ssf_paper. sets lr per task; drop lr or the preset"):
        build_spec("ssf", "vit_b16", "vtab1k", preset="ssf_paper", recipe={"lr": 1e-3}, data_dir=tmp_path, device="cpu")


def test_tuning_and_tuned_identities_are_the_ones_records_were_filed_under(tmp_path):
    """`tune --method lora --suite demo --tasks digits --epochs 1 --grid lr=1e-3,1e-2`, then `run`:
    the hashes those records had before the one-path redesign (a study resumes without rerunning);
    moved on purpose once since, in #20, when LoRA's config gained its `init` option (NOAH's init)."""
    from alore_bench.runs.hparams import for_job
    from alore_bench.runs.record import spec_identity
    from alore_bench.tuning import base_identity

    lora = build_spec("lora", "demo_vit", "demo").method_spec
    grid = make_grid({"lr": [1e-3, 1e-2]}, lora, "test")
    specs = [build_spec("lora", "demo_vit", "demo", tasks="digits", recipe={"epochs": 1}, grid=grid, grid_index=i,
                        device="cpu", data_dir=tmp_path, results_dir=tmp_path) for i in range(2)]
    assert [demo_identity(s) for s in specs] == ["41ab6d593c", "88d406d771"]
    final = build_spec("lora", "demo_vit", "demo", tasks="digits", recipe={"epochs": 1}, device="cpu",
                       data_dir=tmp_path, results_dir=tmp_path)
    source = final.backbone_spec.resolve_weights(None, tmp_path).describe()
    final = resolve_protocol(final, {"digits": "generated"})  # as preflight does for the demo
    specs = [resolve_protocol(s, {"digits": "generated"}) for s in specs]
    identity = spec_identity(final, source, CPU)
    tuning = [{"status": "ok", "task": "digits", "metrics": {"top1": top1},
               "tuning": {"base": base_identity(spec_identity(s, source, CPU), grid.keys), "grid": grid.describe(),
                          "point": s.point, "index": s.grid_index}} for s, top1 in zip(specs, (10.5, 24.5))]
    hparams = for_job(final, "digits", identity, tuning)
    assert hparams.point == {"lr": 1e-2} and stable_hash(dict(hparams.identity)) == "91420097cb"


def test_protocol_auto_takes_the_one_the_prepared_data_implies(tmp_path):
    spec = build_spec("alore", "demo_vit", "vtab1k", tasks="dtd,cifar100", device="cpu", data_dir=tmp_path)
    assert spec.train.protocol == "auto"  # the suites' default
    folder = resolve_protocol(spec, {"dtd": "folder", "cifar100": "folder"})
    assert folder.train.protocol == "noah" and folder.protocol_choice == "auto -> noah"
    assert resolve_protocol(spec, {"dtd": "tfds", "cifar100": "tfds"}).train.protocol == "vpt"
    with pytest.raises(UserError, match="protocol='auto': the tasks' prepared data imply different protocols "
                                        r"\(noah: dtd; vpt: cifar100\)"):
        resolve_protocol(spec, {"dtd": "folder", "cifar100": "tfds"})
    given = build_spec("alore", "demo_vit", "vtab1k", recipe={"protocol": "vpt"}, device="cpu", data_dir=tmp_path)
    assert resolve_protocol(given, {"dtd": "folder"}) is given  # a given protocol is never replaced
    with pytest.raises(ValueError, match="resolve protocol auto"):
        spec_identity(spec, {}, CPU)
