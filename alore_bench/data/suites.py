"""Suites as data: `suites/*.toml` (shipped as `alore_bench.suite_defs`) define every task."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import UserError, param, unknown_name_error
from ..registry import Registry

VTAB_SPLITS = ("train800", "val200", "train800val200", "test")
VTAB_STAGES = {"final": ("train800val200", "test"), "tune": ("train800", "val200")}


@dataclass(frozen=True)
class Task:
    name: str
    suite: str
    group: str
    classes: int
    splits: Mapping[str, int]
    aliases: Tuple[str, ...] = ()
    display: str = ""  # the name papers print in their tables
    description: str = ""
    generator: Optional[str] = None
    tfds: Optional[str] = None
    slices: Mapping[str, str] = field(default_factory=dict)
    label_rule: Optional[str] = None
    manual: bool = False
    manual_files: Tuple[str, ...] = ()
    manual_hint: str = ""
    notes: str = ""
    image_root: Optional[str] = None  # FGVC: where the JSON split files' paths start
    tfds_val: Optional[str] = None  # FGVC from TFDS: the official val split, where one exists


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    groups: Tuple[str, ...]
    source: str
    tasks: Tuple[Task, ...]
    recipe: Mapping[str, Any]
    splits: Tuple[str, ...] = VTAB_SPLITS
    # stage -> (train split, evaluation split)
    stages: Mapping[str, Tuple[str, str]] = field(default_factory=lambda: dict(VTAB_STAGES))
    # Training-time augmentation of the suite's protocol (None: VTAB's none).
    augment: Optional[str] = None
    sources: Tuple[str, ...] = ()
    # Default tuning grids: {"grid": {key: [values]}, "methods": {method: {key: [values]}}}
    tuning: Mapping[str, Any] = field(default_factory=dict)

    def grid_for(self, method: str) -> Dict[str, List[Any]]:
        """The suite's default tuning grid for `method`: the common axes, then the method's own."""
        grid = dict(self.tuning.get("grid", {}))
        grid.update(self.tuning.get("methods", {}).get(method, {}))
        return grid

    def stage_splits(self, stage: str) -> Tuple[str, str]:
        return tuple(self.stages[stage])

    def recipe_for(self, method: str) -> Dict[str, Any]:
        """The suite's training recipe, with its per-method overrides for `method` applied."""
        recipe = {k: v for k, v in self.recipe.items() if k != "methods"}
        recipe.update(self.recipe.get("methods", {}).get(method, {}))
        return recipe

    def restricted(self, names: Optional[List[str]]) -> "Suite":
        """The suite judged on some of its tasks only (a study's or a filter's): complete rows and
        group means then need those tasks alone. Groups left without a task drop out."""
        if not names:
            return self
        keep = {t.name for t in self.select(list(names))}
        tasks = tuple(t for t in self.tasks if t.name in keep)
        return dataclasses.replace(self, tasks=tasks, groups=tuple(g for g in self.groups
                                                                  if any(t.group == g for t in tasks)))

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if name == task.name or name in task.aliases:
                return task
        names = [t.name for t in self.tasks] + [a for t in self.tasks for a in t.aliases]
        raise unknown_name_error(f"task of suite {self.name}", name, names, param("tasks"))

    def select(self, names: Optional[List[str]]) -> List[Task]:
        if not names:
            return list(self.tasks)
        return [self.task(name) for name in names]

    @property
    def task_names(self) -> List[str]:
        return [t.name for t in self.tasks]


def _parse_suite(text: str, origin: str) -> Suite:
    raw = tomllib.loads(text)
    splits = tuple(raw.get("splits", VTAB_SPLITS))
    tasks = []
    for entry in raw["tasks"]:
        entry = dict(entry)
        if entry["group"] not in raw["groups"]:
            raise ValueError(f"{origin}: task {entry['name']} has unknown group {entry['group']!r}")
        missing = [s for s in splits if s not in entry["splits"]]
        if missing:
            raise ValueError(f"{origin}: task {entry['name']} lacks split sizes for {missing}")
        entry["aliases"] = tuple(entry.get("aliases", ()))
        entry["manual_files"] = tuple(entry.get("manual_files", ()))
        tasks.append(Task(suite=raw["name"], **entry))
    stages = {k: tuple(v) for k, v in raw.get("stages", VTAB_STAGES).items()}
    for stage, pair in stages.items():
        if len(pair) != 2 or any(p not in splits for p in pair):
            raise ValueError(f"{origin}: stage {stage} must name a train and an evaluation split from {splits}")
    return Suite(name=raw["name"], description=raw["description"], groups=tuple(raw["groups"]),
                 source=raw["source"], tasks=tuple(tasks), recipe=dict(raw.get("recipe", {})),
                 splits=splits, stages=stages, augment=raw.get("augment"),
                 sources=tuple(raw.get("sources", [raw["source"]])), tuning=dict(raw.get("tuning", {})))


def _load_builtin_suites() -> Dict[str, Suite]:
    suites = {}
    for item in sorted(resources.files("alore_bench.suite_defs").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            suite = _parse_suite(item.read_text(encoding="utf-8"), f"suites/{item.name}")
            suites[suite.name] = suite
    return suites


def read_suite_file(path: Path | str) -> Suite:
    """A suite TOML file as a Suite; any problem is one line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except OSError as error:
        raise UserError(f"{path}: cannot read the suite file ({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid TOML ({error})") from None
    for key in ("name", "description", "groups", "source", "tasks"):
        if key not in raw:
            raise UserError(f"{path}: missing key {key!r} (a suite needs name, description, groups, source and "
                            "[[tasks]])")
    try:
        return _parse_suite(text, str(path))
    except KeyError as error:
        raise UserError(f"{path}: a task lacks key {error.args[0]!r} (each [[tasks]] needs name, group, classes "
                        "and splits)") from None
    except (ValueError, TypeError) as error:
        raise UserError(f"{path}: {error}") from None


def _suites_of(loaded) -> List[Tuple[str, Suite]]:
    """What a suite plugin exports: a Suite, a suite TOML path, or a list of them."""
    items = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
    suites = [item if isinstance(item, Suite) else read_suite_file(item) for item in items]
    return [(suite.name, suite) for suite in suites]


SUITES: Registry[Suite] = Registry("suite", param("suite"), group="alore_bench.suites", adapt=_suites_of)
for _suite in _load_builtin_suites().values():
    SUITES.register(_suite.name, _suite)
