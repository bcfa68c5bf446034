"""Published per-task settings as data: `suites/presets/*.toml` (shipped as
`alore_bench.suite_defs.presets`), selected with `run --preset NAME`.

A preset names one method and one suite, cites where its numbers come from, and gives per-task
method options (e.g. FacT's rank and scale, VPT's prompt length) that replace the run's options
for that task. It may also set the training recipe, for every task (a top-level `[recipe]`) or per
task (`[tasks.NAME.recipe]`), as RLRR's per-task learning rates: those values replace the suite's
recipe for that task. The protocol and the stage are the run's, never a preset's.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config import TrainConfig, config_from_dict, stable_hash
from .errors import UserError, param
from .registry import Registry


# Recipe keys a preset may not set: they define the protocol and the stage of a run, not its training.
RUN_LEVEL_KEYS = ("stage", "protocol", "normalisation", "compile")


@dataclass(frozen=True)
class Preset:
    name: str
    method: str
    suite: str
    source: str
    description: str
    tasks: Mapping[str, Mapping[str, Any]]
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> Dict[str, Any]:
        """What a record keeps: the name, the source and a hash of the per-task options (and of the
        preset-wide recipe, when there is one: the hashes of presets without one are unchanged)."""
        content: Dict[str, Any] = {k: dict(v) for k, v in self.tasks.items()}
        if self.recipe:
            content = {"tasks": content, "recipe": dict(self.recipe)}
        return {"name": self.name, "source": self.source, "sha": stable_hash(content)}

    def recipe_for(self, task: str) -> Dict[str, Any]:
        """The recipe values this preset sets for `task` (preset-wide, then the task's own)."""
        return {**self.recipe, **self.tasks.get(task, {}).get("recipe", {})}

    def recipe_keys(self) -> set:
        return set(self.recipe) | {k for options in self.tasks.values() for k in options.get("recipe", {})}

    def check(self, method: str, suite: str, task_names) -> None:
        if method != self.method:
            raise UserError(f"{param('preset', self.name)} is for method {self.method}, not {method}")
        if suite != self.suite:
            raise UserError(f"{param('preset', self.name)} is for suite {self.suite}, not {suite}")
        unknown = sorted(set(self.tasks) - set(task_names))
        if unknown:
            raise UserError(f"preset {self.name} names tasks {', '.join(unknown)} that suite {suite} lacks")

    def apply(self, spec, config: Any, task: str) -> Any:
        """`config` with this preset's options for `task` (validated), or unchanged when it has none."""
        overrides = {k: v for k, v in self.tasks.get(task, {}).items() if k != "recipe"}
        if not overrides:
            return config
        return spec.config_from_dict({**dataclasses.asdict(config), **overrides})


def _check_recipe(recipe: Mapping[str, Any], where: str) -> None:
    fixed = sorted(set(recipe) & set(RUN_LEVEL_KEYS))
    if fixed:
        raise ValueError(f"{where}: a preset cannot set {', '.join(fixed)} (the run's protocol and stage)")
    config_from_dict(TrainConfig, recipe, where).validate()


def _parse(text: str, origin: str) -> Preset:
    raw = tomllib.loads(text)
    missing = [k for k in ("name", "method", "suite", "source", "description", "tasks") if k not in raw]
    if missing:
        raise ValueError(f"{origin}: missing {', '.join(missing)}")
    preset = Preset(raw["name"], raw["method"], raw["suite"], raw["source"], raw["description"],
                    {task: dict(options) for task, options in raw["tasks"].items()}, dict(raw.get("recipe", {})))
    _check_recipe(preset.recipe, f"{origin} [recipe]")
    for task in preset.tasks:
        _check_recipe(preset.recipe_for(task), f"{origin} [tasks.{task}.recipe]")
    return preset


PRESETS: Registry[Preset] = Registry("preset", param("preset"))
for _item in sorted(resources.files("alore_bench.suite_defs").joinpath("presets").iterdir(), key=lambda p: p.name):
    if _item.name.endswith(".toml"):
        _preset = _parse(_item.read_text(encoding="utf-8"), f"suites/presets/{_item.name}")
        PRESETS.register(_preset.name, _preset)
