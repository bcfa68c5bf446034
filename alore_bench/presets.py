"""Published per-task settings as data: `suites/presets/*.toml` (shipped as
`alore_bench.suite_defs.presets`), selected with `run --preset NAME`.

A preset names one method and one suite, cites where its numbers come from, and gives per-task
method options (e.g. FacT's rank and scale, VPT's prompt length) that replace the run's options
for that task.
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

from .config import stable_hash
from .errors import UserError
from .registry import Registry


@dataclass(frozen=True)
class Preset:
    name: str
    method: str
    suite: str
    source: str
    description: str
    tasks: Mapping[str, Mapping[str, Any]]

    def describe(self) -> Dict[str, Any]:
        """What a record keeps: the name, the source and a hash of the per-task options."""
        return {"name": self.name, "source": self.source, "sha": stable_hash({k: dict(v) for k, v in self.tasks.items()})}

    def check(self, method: str, suite: str, task_names) -> None:
        if method != self.method:
            raise UserError(f"--preset {self.name} is for method {self.method}, not {method}")
        if suite != self.suite:
            raise UserError(f"--preset {self.name} is for suite {self.suite}, not {suite}")
        unknown = sorted(set(self.tasks) - set(task_names))
        if unknown:
            raise UserError(f"preset {self.name} names tasks {', '.join(unknown)} that suite {suite} lacks")

    def apply(self, spec, config: Any, task: str) -> Any:
        """`config` with this preset's options for `task` (validated), or unchanged when it has none."""
        overrides = self.tasks.get(task)
        if not overrides:
            return config
        return spec.config_from_dict({**dataclasses.asdict(config), **overrides})


def _parse(text: str, origin: str) -> Preset:
    raw = tomllib.loads(text)
    missing = [k for k in ("name", "method", "suite", "source", "description", "tasks") if k not in raw]
    if missing:
        raise ValueError(f"{origin}: missing {', '.join(missing)}")
    return Preset(raw["name"], raw["method"], raw["suite"], raw["source"], raw["description"],
                  {task: dict(options) for task, options in raw["tasks"].items()})


PRESETS: Registry[Preset] = Registry("preset", "--preset")
for _item in sorted(resources.files("alore_bench.suite_defs").joinpath("presets").iterdir(), key=lambda p: p.name):
    if _item.name.endswith(".toml"):
        _preset = _parse(_item.read_text(encoding="utf-8"), f"suites/presets/{_item.name}")
        PRESETS.register(_preset.name, _preset)
