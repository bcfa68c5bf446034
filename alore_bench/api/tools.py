"""The rest of the command line's logic: registry listings, cost measurements, the installation
check, validation of methods, suite files and study files, and the offline demo."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import FieldStyle, UserError, param, python_style, say_plain
from ..paths import PathLike, as_path, default_data_dir
from .running import RunResult, Say, run


def list_tables(what: Optional[str] = None, match: str = "*", backbone: str = "vit_b16", options: bool = False,
                data_dir: Optional[PathLike] = None, style: FieldStyle = python_style):
    """The registries as text tables (`alore-bench list`): suites, methods (with budgets on
    `backbone`), backbones (with whether each weights file is found), presets. Parameters named
    in the cells read as `style` has them (default: as this API's arguments)."""
    from ..io import check_folder_path
    from ..listing import registry_tables

    check_folder_path(as_path(data_dir), "data_dir")
    return registry_tables(what, match, backbone, options, as_path(data_dir), style)


def bench(backbone: str = "vit_b16", methods: Union[str, Sequence[str]] = "alore,lora,full,linear",
          batch_size: Optional[int] = None, steps: int = 5, device: str = "auto", threads: int = 0,
          json_out: Optional[PathLike] = None, progress=None) -> Dict[str, Any]:
    """Measure each method's cost on a backbone with random weights (`alore-bench bench`): the
    measurements as a dict, also written to `json_out` when given. `progress`: a rich Progress (or
    anything with add_task / advance / update / remove_task) to follow it."""
    import json

    from ..backbones import BACKBONES
    from ..devices import device_name
    from ..io import atomic_write_text, check_output_file, check_writable_folder

    spec = BACKBONES.get(backbone)
    chosen = _method_names(methods)
    if not 1 <= steps <= 100000:
        raise UserError(f"{param('steps', steps)}: give a number of steps from 1 to 100000")
    if not 0 <= threads <= 1024:
        raise UserError(f"{param('threads', threads)}: give a number of threads up to 1024, or 0 for torch's default")
    if batch_size is not None and not 1 <= batch_size <= 65536:
        raise UserError(f"{param('batch_size', batch_size)}: give a batch size from 1 to 65536")
    json_out = as_path(json_out)
    check_output_file(json_out, "json_out", "bench.json")
    if json_out is not None:
        if not json_out.resolve().parent.is_dir():
            raise UserError(f"{param('json_out', json_out)}: folder {json_out.resolve().parent} does not exist; "
                            "create it first")
        check_writable_folder(json_out.resolve().parent, "json_out")
    resolved = device_name(device)
    from ..costs import BenchSettings, run_bench  # the training stack, once every argument is checked

    settings = BenchSettings(backbone=spec.name, device=resolved, steps=steps, threads=threads,
                             batch_size=batch_size or (64 if resolved.startswith("cuda") else 8))
    result = run_bench(settings, chosen, progress=progress)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=1))
    return result


def _method_names(methods: Union[str, Sequence[str]]) -> List[str]:
    """A `methods` list, every name known (the message names `methods`, not `method`)."""
    from ..errors import unknown_name_error
    from ..methods import METHODS
    from ..runs.spec import parse_names

    chosen = parse_names(methods, "methods")
    for name in chosen:
        if name not in METHODS:
            raise unknown_name_error("method", name, METHODS.names(), param("methods", ",".join(chosen)))
    return chosen


def doctor(data_dir: Optional[PathLike] = None, results_dir: PathLike = "results", style: FieldStyle = python_style):
    """Versions, device, writable folders, prepared suites, weight files, extras and leftovers of
    killed processes (`alore-bench doctor`): a list of checks (name, status, detail; parameters
    named in a detail read as `style` has them)."""
    import dataclasses

    from ..checkup import run_checks
    from ..errors import render_fields
    from ..io import check_folder_path

    check_folder_path(default_data_dir(data_dir), "data_dir")
    check_folder_path(as_path(results_dir), "results_dir")

    return [dataclasses.replace(check, name=render_fields(check.name, style), detail=render_fields(check.detail, style))
            for check in run_checks(default_data_dir(data_dir), as_path(results_dir))]


@dataclass
class Validation:
    name: str
    origin: str = ""  # a plugin's distribution or file, for methods
    results: List[Any] = field(default_factory=list)  # conformance.CheckResult for methods
    summary: str = ""  # for suite and study files

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def validate_method(name: str) -> Validation:
    """The method contract's checks on a tiny ViT (`alore-bench validate method`)."""
    from ..conformance import validate_method as validate
    from ..methods import METHODS

    spec = METHODS.get(name)
    where = METHODS.provenance(spec.name)
    origin = f" (plugin {where.get('distribution') or where.get('file')})" if where else ""
    return Validation(spec.name, origin, validate(spec.name))


def validate_suite(file: PathLike) -> Validation:
    """Parse a suite file as `prepare` and `run` would; runs nothing."""
    from ..data.suites import read_suite_file

    suite = read_suite_file(as_path(file))
    return Validation(suite.name, summary=f"{file}: suite {suite.name}, {len(suite.tasks)} tasks in "
                                          f"{len(suite.groups)} groups, splits {', '.join(suite.splits)}, "
                                          f"source {suite.source}: ok")


def validate_study(file: PathLike) -> Validation:
    """Parse a study file and expand it into its runs (methods, options, grids, suites, tasks,
    backbones checked); runs nothing and needs no data."""
    from .studies import study_plan

    plan = study_plan(file)
    study = plan.study
    return Validation(study.name, summary=f"{file}: study {study.name}, {len(study.variants)} variants on "
                                          f"{', '.join(study.suite_names)}, {plan.runs} runs: ok")


DEMO_METHODS = ("linear", "full", "lora", "alore")


@dataclass
class DemoResult:
    runs: List[RunResult]
    table: Any  # the demo suite's table from every record in the results dir
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)


def demo(data_dir: Optional[PathLike] = None, results_dir: PathLike = "results", device: str = "auto",
         methods: Union[str, Sequence[str]] = DEMO_METHODS, seeds: Any = (42,), epochs: Optional[int] = None,
         progress_factory=None, say: Say = say_plain, done: Optional[Any] = None) -> DemoResult:
    """Offline in minutes: prepare the demo suite, run each method on demo_vit, tabulate.
    `done(result)` hears each method's result as it finishes."""
    from ..api.running import build_spec
    from ..data.suites import SUITES
    from ..reporting import records_frame, suite_table
    from ..runs.record import load_records
    from ..runs.spec import parse_names
    from .running import prepare

    start = time.perf_counter()
    chosen = _method_names(methods)
    # Every option is checked (by building each method's spec) before any data is prepared.
    for method in chosen:
        build_spec(method, "demo_vit", "demo", seeds=seeds, epochs=epochs, device=device, data_dir=data_dir,
                   results_dir=results_dir)
    if progress_factory is None:
        prepare("demo", data_dir=data_dir, say=say)
    else:
        with progress_factory() as progress:
            prepare("demo", data_dir=data_dir, progress=progress, say=say)
    runs = []
    for method in chosen:
        runs.append(run(method, "demo_vit", "demo", seeds=seeds, epochs=epochs, device=device, data_dir=data_dir,
                        results_dir=results_dir, progress_factory=progress_factory, say=say))
        if done is not None:
            done(runs[-1])
    frame = records_frame(load_records(Path(results_dir))[0])
    return DemoResult(runs, suite_table(frame, SUITES.get("demo")), time.perf_counter() - start)
