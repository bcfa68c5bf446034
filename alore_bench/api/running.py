"""Preparing data, running and tuning: `prepare`, `build_spec`, `run`, `tune`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from ..errors import UserError, param, say_plain
from ..paths import PathLike, as_path, default_data_dir

Say = Callable[[str], None]


def prepare(suite: str, tasks: Union[None, str, Sequence[str]] = None, data_dir: Optional[PathLike] = None,
            source: Optional[str] = None, source_path: Optional[PathLike] = None, force: bool = False,
            allow_mismatch: bool = False, tfds_dir: Optional[PathLike] = None, manual_dir: Optional[PathLike] = None,
            progress=None, say: Say = say_plain):
    """Build a suite's verified data cache (`alore-bench prepare`); returns the summary
    (prepared, skipped, unavailable with reasons) with `root`, the suite's folder."""
    from ..data.prepare import PrepareOptions, prepare_suite
    from ..data.suites import SUITES
    from ..progress import SilentProgress
    from ..runs.spec import parse_names

    spec = SUITES.get(suite)
    options = PrepareOptions(source=source, source_path=as_path(source_path), force=force,
                             allow_mismatch=allow_mismatch, tfds_dir=as_path(tfds_dir), manual_dir=as_path(manual_dir))
    root = default_data_dir(data_dir)
    summary = prepare_suite(spec, spec.select(parse_names(tasks, "tasks")), root, options,
                            progress or SilentProgress(), say)
    summary.root = root / spec.name
    return summary


def build_spec(method: str, backbone: str, suite: str = "vtab1k", **kwargs: Any):
    """The run spec `run` would execute (see `runs.spec.build_spec`); recipe keywords as in `run`."""
    from ..runs.spec import build_spec as build

    return build(method, backbone, suite, **_spec_arguments(kwargs))


def _spec_arguments(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """Keywords of `run` / `tune` split into the builder's arguments and its `recipe`."""
    from ..runs.spec import build_spec as build
    import inspect

    known = set(inspect.signature(build).parameters)
    recipe = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
    if "compile" in recipe and not recipe["compile"]:
        recipe["compile"] = None  # not given: the suite's recipe decides
    return {**kwargs, "recipe": {**kwargs.get("recipe", {}), **recipe}}


@dataclass(frozen=True)
class ExecutorChoice:
    """Where jobs run: None values take the defaults (a study file's [executor], else local)."""

    executor: Optional[str] = None
    workers: Optional[int] = None
    per_device: Optional[int] = None
    address: Optional[str] = None
    cpus_per_job: Optional[int] = None

    def make(self, device: str, progress_factory=None, say: Optional[Say] = None, defaults=None):
        from ..execution.executors import executor_options, make_executor

        options = executor_options(defaults, kind=self.executor, workers=self.workers, per_device=self.per_device,
                                   address=self.address, cpus_per_job=self.cpus_per_job)
        return make_executor(options, device, progress_factory, say)


@dataclass
class RunResult:
    specs: List[Any]
    summary: Any  # runs.outcome.Summary

    @property
    def ok(self) -> bool:
        return not self.summary.failed


def _execute(specs, where: ExecutorChoice, progress_factory, say: Say, announce: Optional[str] = None) -> RunResult:
    from ..execution.jobs import run_specs

    executor = where.make(specs[0].device, progress_factory, say)
    return RunResult(specs, run_specs(specs, executor, say, announce))


def run(method: str, backbone: str, suite: str = "vtab1k", *, tasks: Union[None, str, Sequence[str]] = None,
        seeds: Any = (42,), options: Any = None, device: str = "auto", data_dir: Optional[PathLike] = None,
        results_dir: PathLike = "results", weights: Optional[str] = None, weights_dir: Optional[PathLike] = None,
        force: bool = False, save_adapters: bool = False, preset: Optional[str] = None, use_tuned: bool = True,
        log: Sequence[str] = (), checkpoint_every: int = 10, eval_batch_size: int = 256, test_every: int = 0,
        executor: Optional[str] = None,
        workers: Optional[int] = None, per_device: Optional[int] = None, address: Optional[str] = None,
        cpus_per_job: Optional[int] = None, progress_factory=None, say: Say = say_plain, **recipe: Any) -> RunResult:
    """Train and evaluate one method on a suite (`alore-bench run`): one record per task and seed.
    A final run uses the hyper-parameters `tune` selected for this configuration when its records
    are in the results dir (`use_tuned`)."""
    spec = build_spec(method, backbone, suite, tasks=tasks, seeds=seeds, options=options, device=device,
                      data_dir=data_dir, results_dir=results_dir, weights=weights, weights_dir=weights_dir,
                      force=force, save_adapters=save_adapters, preset=preset, use_tuned=use_tuned, log=log,
                      checkpoint_every=checkpoint_every, eval_batch_size=eval_batch_size, test_every=test_every,
                      **recipe)
    return _execute([spec], ExecutorChoice(executor, workers, per_device, address, cpus_per_job), progress_factory,
                    say)


@dataclass
class TuneResult(RunResult):
    grid: Any = None  # tuning.Grid
    selections: List[Any] = field(default_factory=list)  # runs.hparams.TaskSelection per task


def tune(method: str, backbone: str, suite: str = "vtab1k", *, tasks: Union[None, str, Sequence[str]] = None,
         seeds: Any = (42,), grid: Union[None, Mapping[str, Sequence[Any]], Sequence[str]] = None,
         options: Any = None, device: str = "auto", data_dir: Optional[PathLike] = None,
         results_dir: PathLike = "results", weights: Optional[str] = None, weights_dir: Optional[PathLike] = None,
         force: bool = False, preset: Optional[str] = None, log: Sequence[str] = (), checkpoint_every: int = 10,
         eval_batch_size: int = 256,
         executor: Optional[str] = None, workers: Optional[int] = None, per_device: Optional[int] = None,
         address: Optional[str] = None, cpus_per_job: Optional[int] = None, progress_factory=None,
         say: Say = say_plain, **recipe: Any) -> TuneResult:
    """Run a hyper-parameter grid on the suite's tuning stage (VTAB-1k: train800 -> val200, never
    test), one record per point, task and seed, resumable; returns the point each task selects,
    read from the records. `grid`: {key: [values]} or `key=v1,v2` strings; default the suite's."""
    from ..methods import METHODS
    from ..data.suites import SUITES
    from ..runs.hparams import selections
    from ..runs.record import read_record
    from ..tuning import make_grid, parse_grid_options

    method_spec, suite_spec = METHODS.get(method), SUITES.get(suite)
    if grid is None:
        chosen = make_grid(suite_spec.grid_for(method_spec.name), method_spec, f"suites/{suite_spec.name}.toml [tuning]")
    elif isinstance(grid, Mapping):
        chosen = make_grid(grid, method_spec, param("grid"))
    else:
        chosen = parse_grid_options([grid] if isinstance(grid, str) else grid, method_spec)
    if not chosen:
        raise UserError(f"suite {suite_spec.name} has no default tuning grid for {method_spec.name}: pass "
                        f"{param('grid', 'key=v1,v2')}")
    specs = [build_spec(method, backbone, suite, tasks=tasks, seeds=seeds, options=options, device=device,
                        data_dir=data_dir, results_dir=results_dir, weights=weights, weights_dir=weights_dir,
                        force=force, preset=preset, log=log, checkpoint_every=checkpoint_every,
                        eval_batch_size=eval_batch_size, grid=chosen,
                        grid_index=index, **recipe) for index in range(len(chosen.points()))]
    points = f"{len(specs)} grid points: " + "; ".join(", ".join(f"{k}={v}" for k, v in point.items())
                                                      for point in chosen.points())
    result = _execute(specs, ExecutorChoice(executor, workers, per_device, address, cpus_per_job), progress_factory,
                      say, announce=points)
    records = []
    for path in result.summary.paths:
        try:
            records.append(read_record(path))
        except (OSError, ValueError):
            continue
    return TuneResult(specs, result.summary, chosen, selections(records, list(specs[0].tasks)))

