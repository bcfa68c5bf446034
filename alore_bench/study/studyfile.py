"""Study files: one TOML file declares a whole protocol (suite, tasks, backbones, method variants
with fixed options, tuning grids, seeds, recipe overrides). Every key and value is checked before
anything runs; mistakes are one line naming the file, the key and the closest valid name.

    name = "demo"
    suite = "demo"                          # or suites = ["vtab1k", "fgvc"]
    tasks = ["digits", "textures"]          # optional: all tasks; with several suites a table
                                            #   tasks = { vtab1k = ["cifar100"], fgvc = ["cub"] }
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
    grid = { lr = [1e-3, 1e-2] }            # without `grid`: each suite's default grid for the method
    suites = ["vtab1k"]                     # optional: only some of the study's suites

    [executor]
    kind = "local"                          # local, workers or ray (the command line overrides it)
    workers = 1
    per_device = 1
    address = "auto"                        # ray only
    cpus_per_job = 1                        # ray only: CPUs (torch threads) per job
    eval_batch_size = 256                   # images per evaluation batch (not part of any config)
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
from ..execution.executors import EXECUTORS, ExecutorOptions
from ..runs.spec import EVAL_BATCH_SIZE, MAX_EVAL_BATCH, SEED_SETS

STUDY_KEYS = ("name", "description", "suite", "suites", "tasks", "backbones", "seeds", "tuning_seeds", "recipe",
              "variants", "executor")
VARIANT_KEYS = ("method", "options", "grid", "recipe", "preset", "suites")
EXECUTOR_KEYS = ("kind", "workers", "per_device", "address", "cpus_per_job", "eval_batch_size")
# Recipe keys a study may set; the stage is the study's business, not the file's.
RECIPE_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "stage")


@dataclass(frozen=True)
class Variant:
    name: str
    method: str
    method_config: Any
    options: Mapping[str, Any]
    grids: Mapping[str, Grid]  # per suite the variant runs on
    recipe: Mapping[str, Any]
    preset: Optional[str] = None

    @property
    def suites(self) -> Tuple[str, ...]:
        return tuple(self.grids)


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    suites: Tuple[Tuple[str, Optional[Tuple[str, ...]]], ...]  # (suite, its tasks or None for all)
    backbones: Tuple[Tuple[str, Optional[str]], ...]  # (name, weights)
    seeds: Tuple[int, ...]
    tuning_seeds: Tuple[int, ...]
    recipe: Mapping[str, Any]
    variants: Tuple[Variant, ...]
    executor: ExecutorOptions = ExecutorOptions()
    description: str = ""
    # How the jobs evaluate, like the executor never part of what they compute (RunSpec.eval_batch_size).
    eval_batch_size: int = EVAL_BATCH_SIZE

    @property
    def suite_names(self) -> Tuple[str, ...]:
        return tuple(name for name, _tasks in self.suites)

    def tasks_of(self, suite: str) -> List[str]:
        tasks = dict(self.suites)[suite]
        return list(tasks) if tasks else SUITES.get(suite).task_names


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


def _variant(name: str, table: Any, suites: List[Any], study_recipe: Mapping[str, Any], where: str) -> Variant:
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
    names = [suite.name for suite in suites]
    only = table.get("suites", names)
    if not isinstance(only, list) or not only:
        raise UserError(f"{where}.suites: expected a list of the study's suites ({', '.join(names)})")
    for suite_name in only:
        if suite_name not in names:
            raise unknown_name_error("suite of this study", str(suite_name), names, f"{where}.suites")
    grids = {}
    for suite in suites:
        if suite.name not in only:
            continue
        raw_grid = table.get("grid", suite.grid_for(spec.name))
        if not isinstance(raw_grid, dict):
            raise UserError(f"{where}.grid: expected a table of key = [values]")
        for key, values in raw_grid.items():
            if not isinstance(values, list):
                raise UserError(f"{where}.grid {key}: expected a list of values, e.g. {key} = [1e-3, 1e-2]")
        grids[suite.name] = grid = _in_file(f"{where}.grid", make_grid, raw_grid, spec, f"{where}.grid")
        fixed = sorted(set(grid.keys) & (set(options) | set(recipe) | set(study_recipe)))
        if fixed:
            raise UserError(f"{where}: {', '.join(fixed)} is both fixed and in the grid; keep it in one place")
    preset = table.get("preset")
    if preset is not None:
        for suite in suites:
            if suite.name in grids:
                _in_file(f"{where}.preset", lambda: PRESETS.get(preset).check(spec.name, suite.name, suite.task_names))
        clash = sorted(set().union(*(g.keys for g in grids.values())) & PRESETS.get(preset).recipe_keys())
        if clash:  # the tuned value would silently replace the preset's published per-task one
            raise UserError(f"{where}: preset {preset} sets {', '.join(clash)} per task; take it out of the grid")
        fixed = sorted((set(recipe) | set(study_recipe)) & PRESETS.get(preset).recipe_keys())
        if fixed:  # the preset's per-task value would silently replace the file's
            raise UserError(f"{where}: preset {preset} sets {', '.join(fixed)} per task; take it out of the recipe")
    return Variant(name, spec.name, config, options, grids, recipe, preset)


def _suites(raw: Mapping[str, Any], where: str) -> List[Tuple[Any, Optional[Tuple[str, ...]]]]:
    """[(Suite, tasks or None)] from `suite` / `suites` and `tasks`."""
    if ("suite" in raw) == ("suites" in raw):
        raise UserError(f"{where}: give `suite = \"...\"` or `suites = [...]` (one of them)")
    names = [raw["suite"]] if "suite" in raw else raw["suites"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where} suites: expected a list of suite names, e.g. suites = [\"vtab1k\", \"fgvc\"]")
    if len(set(names)) != len(names):
        raise UserError(f"{where} suites: a suite is listed twice")
    suites = [_in_file(f"{where} suite", SUITES.get, name) for name in names]
    tasks = raw.get("tasks")
    if isinstance(tasks, list) and len(suites) == 1:
        tasks = {suites[0].name: tasks}
    if tasks is not None and not isinstance(tasks, dict):
        raise UserError(f"{where} tasks: with several suites, give a table: tasks = {{ {names[0]} = [...] }}")
    for key in tasks or {}:
        if key not in [s.name for s in suites]:
            raise unknown_name_error("suite of this study", key, [s.name for s in suites], f"{where} tasks")
    out = []
    for suite in suites:
        chosen = (tasks or {}).get(suite.name)
        if chosen is not None:
            if not isinstance(chosen, list) or not chosen:
                raise UserError(f"{where} tasks: expected a list of task names of suite {suite.name}")
            chosen = tuple(t.name for t in _in_file(f"{where} tasks", suite.select, chosen))
        out.append((suite, chosen))
    return out


def _executor(table: Any, where: str) -> ExecutorOptions:
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table, e.g. [executor] kind = \"workers\"")
    _check_keys(table, EXECUTOR_KEYS, where)
    kind = table.get("kind", "local")
    if kind not in EXECUTORS:
        raise unknown_name_error("executor", str(kind), list(EXECUTORS), f"{where} kind")
    for key in ("workers", "per_device", "cpus_per_job"):
        _whole_number(table, key, 1, where)
    address = table.get("address")
    if address is not None and not isinstance(address, str):
        raise UserError(f"{where} address: expected \"auto\" or \"ray://host:port\"")
    return ExecutorOptions(kind, table.get("workers", 1), table.get("per_device", 1), address,
                        table.get("cpus_per_job", 1))


def _whole_number(table: Mapping[str, Any], key: str, default: int, where: str, most: Optional[int] = None,
                  noun: str = "a whole number") -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (most is not None and value > most):
        wanted = f"{noun} from 1 to {most}" if most is not None else f"{noun} of at least 1"
        raise UserError(f"{where} {key}: expected {wanted}, got {value!r}")
    return value


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
    for key in ("name", "seeds", "variants"):
        if key not in raw:
            raise UserError(f"{where}: missing `{key}`")
    suites = _suites(raw, where)
    seeds = _seeds(raw["seeds"], f"{where} seeds")
    tuning_seeds = _seeds(raw.get("tuning_seeds", [seeds[0]]), f"{where} tuning_seeds")
    recipe = _recipe(raw.get("recipe", {}), f"{where} [recipe]")
    variants = raw["variants"]
    if not isinstance(variants, dict) or not variants:
        raise UserError(f"{where}: [variants] needs at least one variant, e.g. [variants.alore]")
    return Study(
        name=str(raw["name"]), path=path, suites=tuple((suite.name, tasks) for suite, tasks in suites),
        backbones=_backbones(raw.get("backbones", []), f"{where} backbones"),
        seeds=seeds, tuning_seeds=tuning_seeds, recipe=recipe,
        variants=tuple(_variant(n, t, [s for s, _t in suites], recipe, f"{where} [variants.{n}]")
                       for n, t in variants.items()),
        executor=_executor(raw.get("executor", {}), f"{where} [executor]"), description=str(raw.get("description", "")),
        # `_executor` above has checked that the table is one.
        eval_batch_size=_whole_number(raw.get("executor", {}), "eval_batch_size", EVAL_BATCH_SIZE,
                                      f"{where} [executor]", most=MAX_EVAL_BATCH, noun="a number of images"))
