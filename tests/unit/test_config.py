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


def test_a_shortened_run_keeps_the_warmups_share_so_the_cosine_decays():
    vtab = {"epochs": 100, "warmup_epochs": 10}
    assert make_train_config(vtab, {"epochs": 5}).warmup_epochs == 1  # 10 % of 5, rounded half up
    assert make_train_config(vtab, {"epochs": 30}).warmup_epochs == 3
    assert make_train_config(vtab, {"epochs": 4}).warmup_epochs == 0
    assert make_train_config(vtab, {"epochs": 200}).warmup_epochs == 10  # longer runs keep the recipe's
    assert make_train_config(vtab, {"epochs": 5, "warmup_epochs": 2}).warmup_epochs == 2  # given with it: kept
    assert make_train_config({"epochs": 10, "warmup_epochs": 1}, {"epochs": 3, "warmup_epochs": 1}).warmup_epochs == 1
    # The learning rate now decays within a short run: its last epoch ends below its peak.
    from alore_bench.engine import optimizer_and_schedule
    from torch import nn

    config = make_train_config(vtab, {"epochs": 5, "lr": 1e-3})
    optimizer, scheduler = optimizer_and_schedule(nn.Linear(2, 2), config, steps_per_epoch=4)
    rates = []
    for step in range(1, 21):
        scheduler.step_update(step)
        rates.append(optimizer.param_groups[0]["lr"])
    assert max(rates) > 0.9e-3 and rates[-1] < 0.1 * max(rates)
    with pytest.raises(UserError, match=r"epochs must lie in \[1, 10000\]"):
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

