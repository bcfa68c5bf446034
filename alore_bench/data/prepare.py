"""`alore-bench prepare`: build a suite's cache, task by task, skipping prepared tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import UserError
from .cache import is_prepared, write_task
from .demo import GENERATORS
from .suites import Suite, Task


@dataclass
class PrepareSummary:
    prepared: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def prepare_suite(suite: Suite, tasks: List[Task], data_dir: Path, force: bool, source: Optional[str],
                  say: Callable[[str], None]) -> PrepareSummary:
    if suite.source != "generated":
        # VTAB-1k / FGVC preparation (TFDS, pre-made folders, VPT JSON) is issue #3's work.
        raise UserError(f"preparing suite {suite.name} from {source or suite.source} is not available in this "
                        "version of alore-bench yet; only `alore-bench prepare --suite demo` works offline today")
    if source not in (None, "generated"):
        raise UserError(f"--source {source}: suite {suite.name} is generated on this machine; omit --source")
    summary = PrepareSummary()
    for task in tasks:
        if is_prepared(data_dir, task) and not force:
            summary.skipped.append(task.name)
            say(f"skip {suite.name}/{task.name}: already prepared (--force rebuilds)")
            continue
        splits = GENERATORS[task.generator](task)
        manifest = write_task(data_dir, task, splits, source={
            "kind": "generated", "generator": task.generator, "description": task.description})
        counts = ", ".join(f"{k} {v['count']}" for k, v in manifest["splits"].items())
        summary.prepared.append(task.name)
        say(f"prepared {suite.name}/{task.name}: {counts}")
    return summary
