"""The Python API for notebooks and scripts: the same objects and functions the command line
calls (`from alore_bench import prepare, run, load_frame, suite_table, render_markdown`).

    import alore_bench as ab
    ab.prepare("demo")
    ab.run("alore", "demo_vit", suite="demo", tasks=["digits"], seeds=[42, 44], epochs=3)
    frame = ab.load_frame("results")
    print(ab.render_markdown(ab.suite_table(frame, "demo")))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from .errors import UserError


def prepare(suite: str, tasks: Optional[Sequence[str]] = None, data_dir: Optional[Path] = None,
            source: Optional[str] = None, source_path: Optional[Path] = None, force: bool = False,
            allow_mismatch: bool = False, tfds_dir: Optional[Path] = None, manual_dir: Optional[Path] = None,
            progress=None, say: Callable[[str], None] = print):
    """Build a suite's verified data cache (`alore-bench prepare`); returns the summary
    (prepared, skipped, unavailable with reasons)."""
    from .data.cache import default_data_dir
    from .data.prepare import PrepareOptions, prepare_suite
    from .data.suites import SUITES
    from .engine import SilentProgress

    spec = SUITES.get(suite)
    options = PrepareOptions(source=source, source_path=source_path, force=force, allow_mismatch=allow_mismatch,
                             tfds_dir=tfds_dir, manual_dir=manual_dir)
    return prepare_suite(spec, spec.select(list(tasks) if tasks else None), default_data_dir(data_dir), options,
                         progress or SilentProgress(), say)


def make_plan(method: str, backbone: str, suite: str = "vtab1k", tasks: Optional[Sequence[str]] = None,
              seeds: Iterable[int] = (42,), options: Optional[Mapping[str, Any]] = None,
              data_dir: Optional[Path] = None, results_dir: Path = Path("results"), device: str = "auto",
              weights: Optional[str] = None, force: bool = False, preset: Optional[str] = None, **recipe: Any):
    """A run plan (what `alore-bench run` builds): method options as a dict (`options={"rank": 8}`),
    recipe keys as keywords (epochs, batch_size, lr, weight_decay, stage, protocol, normalisation)."""
    from .methods import METHODS
    from .runner import explicit_keys
    from .study.plan import make_plan as plan_from

    spec = METHODS.get(method)
    config = spec.config_from_dict(dict(options or {}))
    unknown = set(recipe) - {"epochs", "batch_size", "lr", "weight_decay", "stage", "protocol", "normalisation",
                             "compile"}
    if unknown:
        raise UserError(f"unknown recipe keys {sorted(unknown)}: use epochs, batch_size, lr, weight_decay, stage, "
                        "protocol, normalisation or compile")
    plan = plan_from(method, backbone, suite, list(tasks) if tasks else None, list(seeds), recipe, config,
                     data_dir, results_dir, device, weights, force, False, preset)
    # What the caller fixed is never replaced by tuned values or a preset's (as on the command line).
    plan.explicit_keys = explicit_keys(options or {}, **{k: recipe.get(k) for k in ("lr", "weight_decay", "epochs",
                                                                                    "batch_size")})
    return plan


def run_plans(plans, executor=None, say: Callable[[str], None] = print):
    """Check every plan (data, results dir, weights), clean leftovers of killed processes, then run
    their jobs through the executor (default: here, in order). What `alore-bench run` does."""
    from .runner import clean_leftovers, preflight
    from .study.executors import LocalExecutor
    from .study.jobs import plan_jobs

    plans = plans if isinstance(plans, list) else [plans]
    for line in clean_leftovers(plans):
        say(line)
    for plan in plans:
        preflight(plan)
    with executor or LocalExecutor() as runner:
        return runner.run([job for plan in plans for job in plan_jobs(plan)])


def run(method: str, backbone: str, suite: str = "vtab1k", **kwargs: Any):
    """Plan and run one method on a suite (`alore-bench run`); returns the run summary
    (ran, skipped, failed). Keywords as for `make_plan`."""
    return run_plans(make_plan(method, backbone, suite, **kwargs))


def load_frame(results_dir: Path | str = "results"):
    """Every record under `results_dir` as a pandas frame, one row per record (what `report` reads)."""
    from .records import load_records
    from .report import records_frame

    return records_frame(load_records(Path(results_dir))[0])


def suite_table(frame, suite: str, stage: str = "final", tasks: Optional[List[str]] = None):
    """The paper-style table of one suite and stage from a records frame."""
    from .data.suites import SUITES
    from .report import suite_table as table_of

    return table_of(frame, SUITES.get(suite), tasks=tasks, stage=stage)


def render_markdown(table, **options: Any) -> str:
    """A table as the Markdown `alore-bench report --out table.md` writes."""
    from .report import to_markdown

    return to_markdown(table, **options)


def validate_method(name: str) -> List[Dict[str, Any]]:
    """The method contract's checks on `name` (`alore-bench validate method`)."""
    from .conformance import validate_method as validate

    return [vars(result) for result in validate(name)]
