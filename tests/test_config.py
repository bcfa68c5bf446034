"""Config dataclasses, --opt parsing and registries."""

from __future__ import annotations

import pytest

from alore_bench.config import make_train_config, parse_opts, stable_hash
from alore_bench.errors import UserError
from alore_bench.methods import METHODS
from alore_bench.methods.alore import ALoReConfig


def test_parse_opts_converts_types():
    config = parse_opts(ALoReConfig, ["experts=2", "rank=8", "scale=0.5", "sites=attn", "rules=per_site"])
    assert config == ALoReConfig(experts=2, rank=8, scale=0.5, sites="attn", rules="per_site")


@pytest.mark.parametrize("opt,message", [
    ("rnak=4", "did you mean 'rank'"),
    ("rank=four", "expected an integer"),
    ("rank=2.5", "expected an integer"),
    ("sites=everything", "is not one of"),
    ("rank", "expected key=value"),
    ("experts=0", "at least 1"),
])
def test_bad_opts_are_one_line_errors(opt, message):
    with pytest.raises(UserError, match=message) as info:
        parse_opts(ALoReConfig, [opt], "--opt")
    assert "\n" not in str(info.value)


def test_train_config_layers_and_validation():
    config = make_train_config({"epochs": 10, "lr": 1e-2}, {"lr": 5e-4}, {"epochs": None, "batch_size": 8})
    assert (config.epochs, config.lr, config.batch_size) == (10, 5e-4, 8)
    from alore_bench.data.suites import SUITES

    assert SUITES.get("vtab1k").stage_splits(config.stage) == ("train800val200", "test")
    assert SUITES.get("vtab1k").stage_splits("tune") == ("train800", "val200")
    assert make_train_config({"epochs": 3}).warmup_epochs == 3  # capped at the run's length
    with pytest.raises(UserError, match="--epochs must be at least 1"):
        make_train_config({"epochs": 0})


def test_suite_recipes_with_per_method_overrides():
    from alore_bench.data.suites import SUITES

    demo = SUITES.get("demo")
    assert make_train_config(demo.recipe_for("full")).lr == 1e-3
    assert make_train_config(demo.recipe_for("alore")).lr == 1e-2
    vtab = make_train_config(SUITES.get("vtab1k").recipe_for("alore"))
    assert (vtab.epochs, vtab.warmup_epochs, vtab.lr, vtab.weight_decay, vtab.batch_size) == (100, 10, 1e-3, 1e-4, 64)


def test_unknown_method_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'alore'"):
        METHODS.get("alor")


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})

