"""`alore-bench prepare`: build a suite's cache task by task from the chosen source, skipping
prepared tasks. Tasks that cannot be prepared here (manual files or TensorFlow missing) are
reported and skipped; the command then exits non-zero with a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from ..io import Claim
from ..errors import UserError, param
from ..io import check_folder_path, check_writable_folder
from .cache import TaskWriter, is_prepared, task_dir
from .demo import GENERATORS
from .suites import Suite, Task

PATH_SOURCES = ("folder", "json", "archive")
# Every route `prepare` knows; a suite lists the ones it can be prepared from.
SOURCES = ("tfds", *PATH_SOURCES, "generated")


@dataclass
class PrepareOptions:
    source: Optional[str] = None  # default: the suite's own source
    source_path: Optional[Path] = None
    force: bool = False
    allow_mismatch: bool = False
    tfds_dir: Optional[Path] = None
    manual_dir: Optional[Path] = None  # default: <data dir>/manual


@dataclass
class PrepareSummary:
    prepared: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    unavailable: List[Tuple[str, str]] = field(default_factory=list)


def _check_source(suite: Suite, options: PrepareOptions) -> str:
    kind = options.source or suite.source
    if kind not in suite.sources:
        raise UserError(f"{param('source', kind)}: suite {suite.name} can be prepared from {', '.join(suite.sources)}")
    if kind in PATH_SOURCES and options.source_path is None:
        raise UserError(f"{param('source', kind)} needs a path: {param('source_path')} (alore-bench prepare --suite "
                        f"{suite.name} --source {kind} PATH)")
    if kind not in PATH_SOURCES and options.source_path is not None:
        raise UserError(f"a path ({options.source_path}) only goes with {param('source')} {' or '.join(PATH_SOURCES)}")
    for name in ("tfds_dir", "manual_dir"):  # TFDS's own folders: read by the tfds source only
        folder = getattr(options, name)
        check_folder_path(folder, name)
        if folder is not None and kind != "tfds":
            raise UserError(f"{param(name, folder)} applies to {param('source', 'tfds')}, not {kind}: leave it out")
    return kind


def prepare_suite(suite: Suite, tasks: List[Task], data_dir: Path, options: PrepareOptions, progress,
                  say: Callable[[str], None]) -> PrepareSummary:
    from .tfds_source import TaskUnavailable

    from ..io import clean_children

    kind = _check_source(suite, options)
    check_folder_path(data_dir, "data_dir")
    check_writable_folder(data_dir / suite.name, "data_dir")
    for line in clean_children(data_dir / suite.name):  # e.g. a task a killed --force left aside
        say(line)
    summary = PrepareSummary()
    for task in tasks:
        if is_prepared(data_dir, task) and not options.force:
            summary.skipped.append(task.name)
            say(f"skip {suite.name}/{task.name}: already prepared ({param('force', True)} rebuilds)")
            continue
        # One preparation of a task at a time: a second `prepare` waits, then finds it done.
        with Claim.acquire(task_dir(data_dir, task), wait=True, job={"prepare": f"{suite.name}/{task.name}"}):
            if is_prepared(data_dir, task) and not options.force:
                summary.skipped.append(task.name)
                say(f"skip {suite.name}/{task.name}: prepared meanwhile by another process")
                continue
            try:
                manifest = prepare_task(task, kind, data_dir, options, progress, say)
            except TaskUnavailable as exc:
                summary.unavailable.append((task.name, str(exc)))
                say(f"cannot prepare {suite.name}/{task.name} here: {exc}")  # said once: the summary names it
                continue
        counts = ", ".join(f"{k} {v['count']}" for k, v in manifest["splits"].items())
        summary.prepared.append(task.name)
        say(f"prepared {suite.name}/{task.name} from {kind}: {counts}")
    return summary


def prepare_task(task: Task, kind: str, data_dir: Path, options: PrepareOptions, progress, say):
    if kind == "generated":
        with TaskWriter(data_dir, task) as writer:
            for split, (images, labels) in GENERATORS[task.generator](task).items():
                writer.finish_split(split, images, labels)
            return writer.commit({"kind": "generated", "generator": task.generator, "description": task.description})
    if kind == "tfds":
        from .fgvc_source import prepare_tfds_fgvc_task
        from .tfds_source import prepare_tfds_task

        manual = (options.manual_dir or data_dir / "manual") / (task.tfds or task.name).split(":")[0].split("/")[0]
        # Suites with train / val / test splits (FGVC) keep VPT's layout; VTAB-1k slices its four.
        prepare = prepare_tfds_fgvc_task if task.splits.keys() == {"train", "val", "test"} else prepare_tfds_task
        return prepare(task, data_dir, options.tfds_dir, manual, options.allow_mismatch, progress, say)
    if kind == "json":
        from .fgvc_source import prepare_json_task

        return prepare_json_task(task, data_dir, options.source_path, options.allow_mismatch, progress, say)
    if kind == "archive":
        from .fgvc_archives import prepare_archive_task

        return prepare_archive_task(task, data_dir, options.source_path, options.allow_mismatch, progress, say)
    if kind == "folder":
        from .folder_source import prepare_folder_task

        return prepare_folder_task(task, data_dir, options.source_path, options.allow_mismatch, progress, say)
    raise AssertionError(kind)
