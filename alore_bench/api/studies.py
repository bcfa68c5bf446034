"""Studies: a whole protocol from one file (`study_plan`, `study_run`, `study_status`, `study_report`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from ..errors import UserError, param, say_plain
from ..paths import PathLike, as_path
from .running import ExecutorChoice, Say


@dataclass
class StudyPlan:
    study: Any  # study.studyfile.Study
    specs: Dict[str, List[Any]]  # stage -> run specs
    rows: List[Dict[str, Any]]  # runs per suite, backbone, variant and stage

    @property
    def runs(self) -> int:
        return sum(row["runs"] for row in self.rows)


def study_plan(file: PathLike, results_dir: PathLike = "results", data_dir: Optional[PathLike] = None) -> StudyPlan:
    """The runs a study consists of (`alore-bench study plan`); runs nothing and needs no data."""
    from ..study.expand import study_specs
    from ..study.status import study_counts
    from ..study.studyfile import load_study

    study = load_study(as_path(file))
    specs = study_specs(study, data_dir, results_dir, device="cpu")
    return StudyPlan(study, specs, study_counts(specs))


@dataclass
class StudyStatus:
    study: Any
    rows: List[Dict[str, Any]]  # runs, done, running, failed, pending, train_seconds per row

    @property
    def remaining_minutes(self) -> Optional[float]:
        """A rough estimate from the train time per finished run so far (None before any)."""
        finished = sum(r["done"] + r["failed"] for r in self.rows)
        pending = sum(r["pending"] for r in self.rows)
        if not any(r["done"] for r in self.rows) or not pending:
            return None
        return sum(r["train_seconds"] for r in self.rows) / max(finished, 1) * pending / 60

    @property
    def seconds_per_run(self) -> float:
        return sum(r["train_seconds"] for r in self.rows) / max(sum(r["done"] + r["failed"] for r in self.rows), 1)


def study_status(file: PathLike, results_dir: PathLike = "results") -> StudyStatus:
    """Done, running, failed and pending runs per row, from the records (`alore-bench study status`)."""
    from ..io import Claim
    from ..runs.record import load_records
    from ..study.status import study_progress

    plan = study_plan(file, results_dir)
    results = as_path(results_dir)
    return StudyStatus(plan.study, study_progress(plan.specs, load_records(results)[0], Claim.running(results)))


@dataclass
class StudyResult:
    study: Any
    summary: Any  # runs.outcome.Summary
    tables: List[Any] = field(default_factory=list)  # its final tables, one per suite

    @property
    def ok(self) -> bool:
        return not self.summary.failed


def study_run(file: PathLike, data_dir: Optional[PathLike] = None, results_dir: PathLike = "results",
              device: str = "auto", force: bool = False, executor: Optional[str] = None,
              workers: Optional[int] = None, per_device: Optional[int] = None, address: Optional[str] = None,
              cpus_per_job: Optional[int] = None, log: Sequence[str] = (), progress_factory=None,
              say: Say = say_plain, eval_batch_size: Optional[int] = None) -> StudyResult:
    """Tune every variant on the tuning stage, select per task, run the final seeds
    (`alore-bench study run`). Idempotent: run it again after an interruption and it does only
    what is missing. Executor arguments (and `eval_batch_size`) given here override the study
    file's [executor]."""
    from ..devices import device_name
    from ..execution.jobs import run_phases
    from ..runs.spec import _log
    from ..study.expand import STAGES, study_specs
    from ..study.studyfile import load_study

    study = load_study(as_path(file))
    resolved = device_name(device)
    specs = study_specs(study, data_dir, results_dir, resolved, force, _log(log), eval_batch_size)
    where = ExecutorChoice(executor, workers, per_device, address, cpus_per_job)
    with where.make(resolved, progress_factory, say, defaults=study.executor) as runner:
        summary = run_phases([(stage, specs[stage]) for stage in STAGES], runner, say, f"study {study.name}: ")
    return StudyResult(study, summary, study_tables(study, results_dir))


def study_tables(study, results_dir: PathLike) -> List[Any]:
    """The study's final-stage tables, one per suite: its variants' test records on the study's own
    tasks only (tuning rows and other tasks left out)."""
    from ..data.suites import SUITES
    from ..reporting import records_frame, suite_table
    from ..runs.record import load_records

    frame = records_frame(load_records(as_path(results_dir))[0])
    tables = []
    for suite in study.suite_names:
        mine = frame[(frame["stage"] == "final") & frame["variant"].isin([v.name for v in study.variants])
                     & frame["backbone"].isin([b for b, _w in study.backbones]) & (frame["suite"] == suite)
                     & frame["task"].isin(study.tasks_of(suite))]
        tables.append(suite_table(mine, SUITES.get(suite), tasks=study.tasks_of(suite), stage="final"))
    return tables


@dataclass
class StudyReport:
    tables: List[Any]
    text: Optional[str] = None  # with `out`: what was written


def study_report(file: PathLike, results_dir: PathLike = "results", out: Optional[PathLike] = None) -> StudyReport:
    """The study's table (final stage, its variants only), as tables or written to `out`."""
    from ..io import atomic_write_text, check_folder_path, check_output_file
    from ..reporting import tables_text
    from ..reporting.build import FORMATS
    from ..study.studyfile import load_study

    out = as_path(out)
    check_output_file(out, "out", "study.md")
    fmt = FORMATS.get(out.suffix.lower()) if out is not None else None
    if out is not None and fmt is None:
        raise UserError(f"{param('out', out)}: unknown suffix {out.suffix!r}; use .md, .csv, .json or .tex")
    check_folder_path(as_path(results_dir), "results_dir", must_exist=True)
    tables = [t for t in study_tables(load_study(as_path(file)), results_dir) if t.rows]
    if not tables:
        raise UserError(f"no final records of study {file} under {results_dir}: run `alore-bench study run {file}`")
    if out is None:
        return StudyReport(tables)
    text = tables_text(tables, fmt)
    atomic_write_text(out, text)
    return StudyReport(tables, text)
