"""From a CLI call or a study variant to the runner's RunPlans."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

from ..backbones import BACKBONES
from ..config import make_train_config
from ..data.cache import default_data_dir
from ..data.suites import SUITES
from ..env import resolve_device
from ..errors import UserError
from ..methods import METHODS
from ..presets import PRESETS
from ..runner import RunPlan

# Named seed sets: VPT's five final-run seeds (KMnP/vpt tune_vtab.py) and their first three.
SEED_SETS = {"vpt5": (42, 44, 82, 100, 800), "vpt3": (42, 44, 82)}


def make_plan(method: str, backbone: str, suite: str, tasks: Optional[Sequence[str]], seeds: Sequence[int],
              recipe: Mapping[str, Any], method_config: Any, data_dir: Optional[Path], results_dir: Path,
              device: str = "auto", weights: Optional[str] = None, force: bool = False,
              save_adapters: bool = False, preset: Optional[str] = None) -> RunPlan:
    """A RunPlan: the suite's recipe for the method with `recipe` overrides (None values ignored)."""
    method_spec = METHODS.get(method)
    suite_spec = SUITES.get(suite)
    train_config = make_train_config(suite_spec.recipe_for(method_spec.name), dict(recipe))
    if not seeds:
        raise UserError("--seeds: give at least one seed, e.g. --seeds 42")
    return RunPlan(suite=suite_spec, tasks=suite_spec.select(list(tasks) if tasks else None),
                   backbone=BACKBONES.get(backbone), method=method_spec, method_config=method_config,
                   train_config=train_config, seeds=list(dict.fromkeys(seeds)), data_dir=default_data_dir(data_dir),
                   results_dir=results_dir, device=resolve_device(device), weights=weights, force=force,
                   save_adapters=save_adapters, preset=PRESETS.get(preset) if preset else None)


def parse_seeds(value: str) -> List[int]:
    """`42,44,82` or a named set (vpt5, vpt3)."""
    if value.strip() in SEED_SETS:
        return list(SEED_SETS[value.strip()])
    try:
        seeds = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--seeds {value!r}: expected comma-separated integers (e.g. --seeds 42,44,82) or a named "
                        f"set ({', '.join(SEED_SETS)})") from None
    if not seeds:
        raise UserError("--seeds: give at least one seed, e.g. --seeds 42")
    wrong = [s for s in seeds if not 0 <= s < 2**32]
    if wrong:
        raise UserError(f"--seeds {value!r}: seeds must lie in [0, 2^32) (numpy and torch seeds), got {wrong[0]}")
    return seeds
