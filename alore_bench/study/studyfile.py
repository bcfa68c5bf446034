"""Study files: one TOML file declares a whole protocol (suite, tasks, backbones, method variants
with fixed options, tuning grids, seeds, recipe overrides). Every key and value is checked before
anything runs; mistakes are one line naming the file, the key and the closest valid name.

    name = "demo"
    suite = "demo"
    tasks = ["digits", "textures"]          # optional: all of the suite's tasks
    backbones = ["demo_vit"]                # or [{name = "vit_b16", weights = "ViT-B_16.npz"}]
    seeds = "vpt3"                          # a named set (vpt5, vpt3) or a list
    tuning_seeds = [42]                     # optional: the first final seed

    [recipe]                                # overrides of the suite's recipe (epochs, batch_size, ...)
    epochs = 10

    [variants.alore]                        # the name; `method` defaults to it
    grid = { lr = [1e-3, 1e-2], scale = [0.1, 1.0] }

    [variants.alore-n8]
    method = "alore"
    options = { experts = 8 }
    grid = { lr = [1e-3, 1e-2] }

    [executor]
    kind = "local"
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..backbones import BACKBONES
from ..config import TrainConfig, make_train_config
from ..data.suites import SUITES
from ..errors import UserError, unknown_name_error
from ..methods import METHODS
from ..presets import PRESETS
from ..tuning import Grid, make_grid
from .plan import SEED_SETS

STUDY_KEYS = ("name", "description", "suite", "tasks", "backbones", "seeds", "tuning_seeds", "recipe", "variants",
              "executor")
VARIANT_KEYS = ("method", "options", "grid", "recipe", "preset")
EXECUTORS = ("local",)
# Recipe keys a study may set; the stage is the study's business, not the file's.
RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "stage")


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    method_config: Any
    options: Mapping[str, Any]
    grid: Grid
    recipe: Mapping[str, Any]
    preset: Optional[str] = None


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    suite: str
    tasks: Optional[Tuple[str, ...]]
    backbones: Tuple[Tuple[str, Optional[str]], ...]  # (name, weights)
    seeds: Tuple[int, ...]
    tuning_seeds: Tuple[int, ...]
    recipe: Mapping[str, Any]
    variants: Tuple[Variant, ...]
    executor: str = "local"
    description: str = ""


def _in_file(where: str, function, *args):
    """Call `function`; a UserError it raises is re-raised naming the study file and the key."""
    try:
        return function(*args)
    except UserError as exc:
        if where.split(" ")[0] in str(exc):
            raise
        raise UserError(f"{where}: {exc}") from None


def _check_keys(table: Mapping[str, Any], allowed, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise unknown_name_error("key", key, allowed, where)


def _seeds(value: Any, where: str) -> Tuple[int, ...]:
    if isinstance(value, str):
        if value not in SEED_SETS:
            raise unknown_name_error("seed set", value, SEED_SETS, where)
        return SEED_SETS[value]
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
        raise UserError(f"{where}: expected a named seed set ({', '.join(SEED_SETS)}) or a list of integers")
    if not all(0 <= v < 2**32 for v in value):
        raise UserError(f"{where}: seeds must lie in [0, 2^32)")
    return tuple(dict.fromkeys(value))


def _backbones(value: Any, where: str) -> Tuple[Tuple[str, Optional[str]], ...]:
    if not isinstance(value, list) or not value:
        raise UserError(f"{where}: expected a list of backbone names or {{name = ..., weights = ...}} tables")
    out = []
    for entry in value:
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected a backbone name or a {{name = ..., weights = ...}} table, got {entry!r}")
        _check_keys(entry, ("name", "weights"), where)
        if entry.get("name") not in BACKBONES:
            raise unknown_name_error("backbone", str(entry.get("name")), list(BACKBONES), where)
        out.append((BACKBONES.canonical(entry["name"]), entry.get("weights")))
    return tuple(out)


def _recipe(table: Any, where: str) -> Dict[str, Any]:
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table of recipe settings")
    _check_keys(table, RECIPE_KEYS, where)
    _in_file(where, make_train_config, table)  # values checked now, not after an hour of tuning
    return dict(table)


def _variant(name: str, table: Any, suite, study_recipe: Mapping[str, Any], where: str) -> Variant:
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table")
    _check_keys(table, VARIANT_KEYS, where)
    method = table.get("method", name)
    if method not in METHODS:
        raise unknown_name_error("method", method, list(METHODS), f"{where} method")
    spec = METHODS.get(method)
    options = dict(table.get("options", {}))
    config = _in_file(f"{where}.options", spec.config_from_dict, options) if options else spec.default_config()
    recipe = _recipe(table.get("recipe", {}), f"{where}.recipe")
    raw_grid = table.get("grid", suite.grid_for(spec.name))
    if not isinstance(raw_grid, dict):
        raise UserError(f"{where}.grid: expected a table of key = [values]")
    for key, values in raw_grid.items():
        if not isinstance(values, list):
            raise UserError(f"{where}.grid {key}: expected a list of values, e.g. {key} = [1e-3, 1e-2]")
    grid = _in_file(f"{where}.grid", make_grid, raw_grid, spec, f"{where}.grid")
    fixed = sorted(set(grid.keys) & (set(options) | set(recipe) | set(study_recipe)))
    if fixed:
        raise UserError(f"{where}: {', '.join(fixed)} is both fixed and in the grid; keep it in one place")
    preset = table.get("preset")
    if preset is not None:
        _in_file(f"{where}.preset", lambda: PRESETS.get(preset).check(spec.name, suite.name, suite.task_names))
    return Variant(name, spec.name, config, options, grid, recipe, preset)


def load_study(path: Path) -> Study:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"study file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"study file {path}: unreadable ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"study file {path}: not valid TOML ({exc})") from None
    where = str(path)
    _check_keys(raw, STUDY_KEYS, where)
    for key in ("name", "suite", "seeds", "variants"):
        if key not in raw:
            raise UserError(f"{where}: missing `{key}`")
    suite = _in_file(f"{where} suite", SUITES.get, raw["suite"])
    tasks = raw.get("tasks")
    if tasks is not None:
        if not isinstance(tasks, list) or not tasks:
            raise UserError(f"{where} tasks: expected a list of task names of suite {suite.name}")
        tasks = tuple(t.name for t in _in_file(f"{where} tasks", suite.select, tasks))
    seeds = _seeds(raw["seeds"], f"{where} seeds")
    tuning_seeds = _seeds(raw.get("tuning_seeds", [seeds[0]]), f"{where} tuning_seeds")
    recipe = _recipe(raw.get("recipe", {}), f"{where} [recipe]")
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise UserError(f"{where}: [variants] needs at least one variant, e.g. [variants.alore]")
    executor = raw.get("executor", {"kind": "local"})
    _check_keys(executor, ("kind",), f"{where} [executor]")
    if executor.get("kind", "local") not in EXECUTORS:
        raise unknown_name_error("executor", executor["kind"], EXECUTORS, f"{where} [executor] kind")
    return Study(
        name=str(raw["name"]), path=path, suite=suite.name, tasks=tasks,
        backbones=_backbones(raw.get("backbones", []), f"{where} backbones"),
        seeds=seeds, tuning_seeds=tuning_seeds, recipe=recipe,
        variants=tuple(_variant(n, t, suite, recipe, f"{where} [variants.{n}]") for n, t in variants.items()),
        executor=executor.get("kind", "local"), description=str(raw.get("description", "")))


def study_jobs(study: Study) -> List[Dict[str, Any]]:
    """What a study runs, by (backbone, variant, stage): counts of runs, without running anything."""
    tasks = len(study.tasks) if study.tasks else len(SUITES.get(study.suite).tasks)
    rows = []
    for backbone, _weights in study.backbones:
        for variant in study.variants:
            points = len(variant.grid.points())
            rows.append({"backbone": backbone, "variant": variant.name, "stage": "tune",
                         "runs": points * tasks * len(study.tuning_seeds), "grid points": points})
            rows.append({"backbone": backbone, "variant": variant.name, "stage": "final",
                         "runs": tasks * len(study.seeds), "grid points": None})
    return rows
