"""From specs to outcomes: leftovers of killed processes cleaned and every spec checked once
(preflight) before the first job, then the jobs through an executor, in phases where later jobs
depend on earlier records (a study's finals select from its tuning records).

Jobs another process holds a claim on are skipped at first and waited for at the end of their
phase, so no phase starts while its predecessor still runs elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..runs.outcome import Summary
from ..runs.preflight import Checked, clean_leftovers, preflight, source_kinds
from ..runs.spec import Job, RunSpec, preset_difference_lines, resolve_protocol
from .executors import Executor, LocalExecutor

Say = Callable[[str], None]


def jobs_of(specs: Sequence[RunSpec]) -> List[Job]:
    return [job for spec in specs for job in spec.jobs()]


def check_specs(specs: Sequence[RunSpec], say: Say) -> List[RunSpec]:
    """Clean leftovers in the specs' folders, then preflight each distinct world once (specs that
    differ only in their recipe or options look at the same data, folders and weights); returns
    the specs as they run (protocol `auto` resolved)."""
    for line in clean_leftovers(list(specs)):
        say(line)
    for line in dict.fromkeys(line for spec in specs for line in preset_difference_lines(spec)):
        say(line)  # once per command, however many grid points or variants share it
    seen: Dict[Tuple, Checked] = {}
    resolved = []
    for spec in specs:
        key = (str(spec.data_dir), spec.suite, spec.tasks, str(spec.results_dir), spec.backbone, spec.weights,
               spec.train.protocol)
        if key not in seen:
            seen[key] = preflight(spec)
        resolved.append(resolve_protocol(spec, source_kinds(seen[key].manifests)))
    return resolved


def run_specs(specs: Sequence[RunSpec], executor: Optional[Executor] = None, say: Say = print,
              announce: Optional[str] = None) -> Summary:
    """Check every spec, then run all their jobs through `executor` (default: here, in order);
    `announce` is said once the checks have passed (a mistake stays the only line)."""
    resolved = check_specs(specs, say)
    if announce:
        say(announce)
    with executor or LocalExecutor(say=say) as runner:
        return runner.run(jobs_of(resolved))


def run_phases(phases: Sequence[Tuple[str, Sequence[RunSpec]]], executor: Executor, say: Say = print,
               label: str = "") -> Summary:
    """Run each phase's jobs to the end (waiting for jobs other processes hold) before the next
    phase starts. The executor stays open across phases (workers start once)."""
    resolved = iter(check_specs([spec for _name, specs in phases for spec in specs], say))
    phases = [(name, [next(resolved) for _spec in specs]) for name, specs in phases]
    total = Summary()
    for name, specs in phases:
        jobs = jobs_of(specs)
        say(f"{label}{len(jobs)} {name} jobs on {executor.describe()}")
        summary = executor.run(jobs)
        if summary.busy:
            say(f"{label}waiting for {len(summary.busy)} {name} jobs other processes are running")
            busy = {str(p) for p in summary.busy}
            waiting = [job.replace(wait=True, spec=job.spec.replace(force=False)) for job in jobs]
            later = executor.run([job for job in waiting if _may_be(job, busy)])
            summary.skipped = [p for p in summary.skipped if p not in summary.busy] + later.skipped
            summary.ran += later.ran
            summary.failed += later.failed
            summary.busy = []
        total.add(summary)
    return total


def _may_be(job: Job, busy_paths) -> bool:
    """Whether `job` may be one of the busy ones: same task and seed as one of their record paths
    (its exact path depends on hyper-parameters selected at run time)."""
    return any(Path(p).parent.name == job.task and Path(p).name == f"seed{job.seed}.json" for p in busy_paths)
