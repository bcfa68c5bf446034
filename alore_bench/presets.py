"""Published per-task settings as data: `suites/presets/*.toml` (shipped as
`alore_bench.suite_defs.presets`), selected with `run --preset NAME`.

A preset names one method and one suite, cites where its numbers come from, and gives per-task
method options (e.g. FacT's rank and scale, VPT's prompt length) that replace the run's options
for that task. It may also set the training recipe, for every task (a top-level `[recipe]`) or per
task (`[tasks.NAME.recipe]`), as RLRR's per-task learning rates: those values replace the suite's
recipe for that task. The stage is the run's, never a preset's.

A `[published]` table names what the published row was trained with beyond its recipe: the input
protocol, the normalisation and the backbone's weight release (SSF: the pre-made folders at 0.5/0.5
with the AugReg in21k file). A run with the preset uses them unless the caller gives another value;
then it says so in one line and records the difference (`config.preset.differences`).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Any, Dict, Mapping, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config import TrainConfig, config_from_dict, stable_hash
from .errors import UserError, param
from .registry import Registry


# Recipe keys a preset may not set: they define the protocol and the stage of a run, not its training
# (the protocol and normalisation a row was published with go in `[published]`).
RUN_LEVEL_KEYS = ("stage", "protocol", "normalisation", "compile")
# What `[published]` may name: run-level settings the published row was trained with.
PUBLISHED_KEYS = ("protocol", "normalisation", "weights")


@dataclass(frozen=True)
class Preset:
    name: str
    method: str
    suite: str
    source: str
    description: str
    tasks: Mapping[str, Mapping[str, Any]]
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # Run-level settings of the published row (PUBLISHED_KEYS): defaults of a run with this preset.
    published: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def describe(self) -> Dict[str, Any]:
        """What a record keeps: the name, the source and a hash of the per-task options (and of the
        preset-wide recipe and published settings, when there are some: the hashes of presets
        without them are unchanged)."""
        content: Dict[str, Any] = {k: dict(v) for k, v in self.tasks.items()}
        if self.recipe or self.published:
            content = {"tasks": content, "recipe": dict(self.recipe)}
        if self.published:
            content["published"] = dict(self.published)
        described = {"name": self.name, "source": self.source, "sha": stable_hash(content)}
        if self.published:
            described["published"] = dict(self.published)
        return described

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


def _check_published(published: Mapping[str, Any], where: str) -> None:
    from .protocols import PROTOCOLS

    unknown = sorted(set(published) - set(PUBLISHED_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(unknown)} (allowed: {', '.join(PUBLISHED_KEYS)})")
    if not all(isinstance(v, str) for v in published.values()):
        raise ValueError(f"{where}: values are names (strings)")
    if "protocol" in published and published["protocol"] not in PROTOCOLS.names():
        raise ValueError(f"{where}: protocol {published['protocol']!r} is none of {', '.join(PROTOCOLS.names())}")
    if "normalisation" in published:
        config_from_dict(TrainConfig, {"normalisation": published["normalisation"]}, where).validate()


def _parse(text: str, origin: str) -> Preset:
    raw = tomllib.loads(text)
    missing = [k for k in ("name", "method", "suite", "source", "description", "tasks") if k not in raw]
    if missing:
        raise ValueError(f"{origin}: missing {', '.join(missing)}")
    _check_published(raw.get("published", {}), f"{origin} [published]")
    preset = Preset(raw["name"], raw["method"], raw["suite"], raw["source"], raw["description"],
                    {task: dict(options) for task, options in raw["tasks"].items()}, dict(raw.get("recipe", {})),
                    dict(raw.get("published", {})))
    _check_recipe(preset.recipe, f"{origin} [recipe]")
    for task in preset.tasks:
        _check_recipe(preset.recipe_for(task), f"{origin} [tasks.{task}.recipe]")
    return preset


PRESETS: Registry[Preset] = Registry("preset", param("preset"))
for _item in sorted(resources.files("alore_bench.suite_defs").joinpath("presets").iterdir(), key=lambda p: p.name):
    if _item.name.endswith(".toml"):
        _preset = _parse(_item.read_text(encoding="utf-8"), f"suites/presets/{_item.name}")
        PRESETS.register(_preset.name, _preset)


@dataclass(frozen=True)
class PublishedChoice:
    """What a run takes from its preset's `[published]` settings, and where it differs from them."""

    recipe: Dict[str, str]  # protocol / normalisation the caller left to the preset
    weights: Optional[str]  # the weight release the caller left to the preset (None: the caller's or the default)
    # (setting, published value, this run's value); None: the backbone's default weights, as it lacks the release.
    differences: Tuple[Tuple[str, str, Optional[str]], ...]

    def lines(self, preset: str, backbone: str) -> Tuple[str, ...]:
        said = []
        for key, published, used in self.differences:
            uses = param(key, used) if used is not None else \
                f"the default weights of {backbone}, which has no {published} release"
            said.append(f"preset {preset} was published with {param(key, published)}; this run uses {uses} "
                        "(recorded as config.preset.differences)")
        return tuple(said)


def published_choice(preset: Optional[Preset], backbone, given: Mapping[str, Any],
                     weights: Optional[str]) -> PublishedChoice:
    """The preset's published protocol, normalisation and weight release, unless the caller gave
    another value (a difference). `backbone` is the run's BackboneSpec: a release it lacks is a
    difference too (the run keeps the backbone's default weights)."""
    from pathlib import Path

    published = dict(preset.published) if preset is not None else {}
    recipe: Dict[str, str] = {}
    differences = []
    for key in ("protocol", "normalisation"):
        if key not in published:
            continue
        if given.get(key) is None:
            recipe[key] = published[key]
        elif given[key] != published[key]:
            differences.append((key, published[key], str(given[key])))
    chosen = None
    if "weights" in published:
        release = backbone.named_release(published["weights"])
        if weights is not None:
            same = release is not None and (weights == release.name or Path(weights).name == release.file)
            if not same:
                differences.append(("weights", published["weights"], str(weights)))
        elif release is None:
            differences.append(("weights", published["weights"], None))
        else:
            chosen = release.name
    return PublishedChoice(recipe, chosen, tuple(differences))
