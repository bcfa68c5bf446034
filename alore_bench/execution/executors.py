"""Executors decide where jobs run, never what they do: every job goes through `runs.runner.run_job`,
so the records are the same whichever executor wrote them.

- local: this process, in order, with a progress bar.
- workers: N worker processes on this machine. On CUDA each worker owns a device slot
  (`per_device` slots per GPU, so small PETL runs share a GPU); on CPU the cores are split
  between the workers. Workers are spawned, not forked (CUDA cannot be forked).
- ray: one Ray task per job asking for 1/per_device of a GPU and `cpus_per_job` CPUs (its torch
  threads), on a local Ray instance or a cluster (`address`); data and results dirs must be
  shared paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import re
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import UserError, WorkLost, param, unknown_name_error
from ..registry import Registry
from ..runs.outcome import Outcome, Summary
from ..runs.spec import Job


@dataclass(frozen=True)
class ExecutorOptions:
    """Where and how many: never part of what a job computes. None values take the defaults."""

    kind: str = "local"
    workers: int = 1
    per_device: int = 1
    address: Optional[str] = None
    cpus_per_job: int = 1

    def check(self) -> None:
        for name, most in (("workers", 1024), ("per_device", 64), ("cpus_per_job", 1024)):
            if not 1 <= getattr(self, name) <= most:
                raise UserError(f"{param(name, getattr(self, name))}: give a number from 1 to {most}")
        if self.kind not in EXECUTORS:
            raise unknown_name_error("executor", self.kind, list(EXECUTORS), param("executor"))
        if self.address is not None and not ADDRESS.fullmatch(self.address):
            raise UserError(f"{param('address', self.address)}: expected auto, ray://HOST:PORT or HOST:PORT")


# Which executors read each option: one given for another executor would be silently ignored
# (`--workers 1` is the local executor).
APPLIES_TO = {"workers": ("workers", "local"), "per_device": ("workers", "ray"), "address": ("ray",),
              "cpus_per_job": ("ray",)}
ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9.\-]+:(6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]?\d{1,4})")


def executor_options(defaults: Optional[ExecutorOptions] = None, **given: Any) -> ExecutorOptions:
    """Options given (None: not given) over `defaults` (a study file's [executor])."""
    base = defaults or ExecutorOptions()
    chosen = ExecutorOptions(**{name: getattr(base, name) if given.get(name) is None else given[name]
                                for name in ("kind", "workers", "per_device", "address", "cpus_per_job")})
    if chosen.kind == "local" and chosen.workers > 1:  # `--workers N` alone means N worker processes
        chosen = dataclasses.replace(chosen, kind="workers")
    chosen.check()
    for name, kinds in APPLIES_TO.items():
        if given.get(name) is not None and chosen.kind not in kinds:
            raise UserError(f"{param(name, given[name])} applies to {' and '.join(f'executor {k}' for k in kinds)}, "
                            f"not {chosen.kind}: add {param('executor', kinds[0])} or leave it out")
    return chosen


class Executor:
    """Runs a batch of jobs and returns their outcomes added up. A UserError in any job (missing
    data, bad weights) stops the batch: the same mistake would fail every other job too."""

    def run(self, jobs: Sequence[Job]) -> Summary:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Free what the executor started (worker processes, a local Ray instance)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _print(message: str) -> None:
    print(message, flush=True)


class LocalExecutor(Executor):
    def __init__(self, progress_factory: Optional[Callable[[], Any]] = None,
                 say: Optional[Callable[[str], None]] = None):
        self.progress_factory, self.say = progress_factory, say

    def describe(self) -> str:
        return "local"

    def run(self, jobs: Sequence[Job]) -> Summary:
        from ..progress import SilentProgress
        from ..runs.runner import run_job

        summary = Summary()
        if self.progress_factory is None:
            for job in jobs:
                summary.count(run_job(job, SilentProgress(), self.say or _print))
            return summary
        with self.progress_factory() as progress:
            say = self.say or (lambda m: progress.console.print(m, highlight=False, markup=False))
            overall = progress.add_task(jobs_label(jobs), total=len(jobs)) if len(jobs) > 1 else None
            for job in jobs:
                summary.count(run_job(job, progress, say))
                if overall is not None:
                    progress.advance(overall)
            if overall is not None:
                progress.remove_task(overall)
        return summary


def jobs_label(jobs: Sequence[Job], where: str = "") -> str:
    return f"{len(jobs)} jobs" + (f" on {where}" if where else "")


@contextlib.contextmanager
def jobs_bar(progress_factory: Optional[Callable[[], Any]], jobs: Sequence[Job], where: str):
    """A bar over jobs that run elsewhere (worker processes, Ray): yields `done()` to call per job."""
    if progress_factory is None or len(jobs) < 2:
        yield lambda: None
        return
    with progress_factory() as progress:
        bar = progress.add_task(jobs_label(jobs, where), total=len(jobs))
        yield lambda: progress.advance(bar)


def device_slots(device: str, workers: int, per_device: int) -> List[str]:
    """The device each of `workers` workers owns: per_device slots per GPU, in GPU order."""
    if per_device < 1:
        raise UserError(f"{param('per_device', per_device)}: give at least 1 run per GPU")
    if workers < 1:
        raise UserError(f"{param('workers', workers)}: give at least 1 worker")
    if not device.startswith("cuda"):
        return ["cpu"] * workers
    import torch

    gpus = [device] if ":" in device else [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if workers > len(gpus) * per_device:
        raise UserError(f"{param('workers', workers)} needs more slots than {len(gpus)} GPU(s) x "
                        f"{param('per_device', per_device)}: use at most {param('workers', len(gpus) * per_device)} "
                        f"or raise {param('per_device')}")
    return [gpus[i // per_device] for i in range(workers)]


def cpu_threads(concurrent_jobs: int) -> int:
    """The intra-op threads of one of `concurrent_jobs` CPU jobs sharing this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // concurrent_jobs)


_WORKER: Dict[str, Any] = {}


def _init_worker(slots, threads: int) -> None:
    import torch

    _WORKER["device"] = slots.get()
    torch.set_num_threads(threads)


def _worker_say(message: str) -> None:
    print(f"[worker {os.getpid()} {_WORKER.get('device', '')}] {message}", flush=True)


def _work(job: Dict[str, Any]) -> Outcome:
    from ..progress import SilentProgress
    from ..runs.runner import run_job

    job_obj = Job.from_dict(job)
    if job_obj.spec.device != "cpu":
        job_obj = job_obj.replace(spec=job_obj.spec.replace(device=_WORKER["device"]))
    return run_job(job_obj, SilentProgress(), _worker_say)


class WorkerExecutor(Executor):
    def __init__(self, workers: int, per_device: int = 1, device: str = "cpu", progress_factory=None):
        self.workers, self.per_device, self.progress_factory = workers, per_device, progress_factory
        self.slots = device_slots(device, workers, per_device)
        self._pool: Optional[ProcessPoolExecutor] = None  # kept across batches: workers start once

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            slots = context.Queue()
            for slot in self.slots:
                slots.put(slot)
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_worker,
                                             initargs=(slots, cpu_threads(self.workers)))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def describe(self) -> str:
        return f"{self.workers} workers on {', '.join(sorted(set(self.slots)))}"

    def run(self, jobs: Sequence[Job]) -> Summary:
        summary = Summary()
        if not jobs:
            return summary
        pool = self._start()
        pending = {pool.submit(_work, job.to_dict()) for job in jobs}
        try:
            with jobs_bar(self.progress_factory, jobs, self.describe()) as finished:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        summary.count(future.result())
                        finished()
        except BrokenProcessPool:
            self._pool = None  # a broken pool takes no more work; its live workers exit with it
            pool.shutdown(wait=False, cancel_futures=True)
            raise WorkLost(f"a worker process died while running jobs (killed, or out of memory) after "
                           f"{len(summary.ran)} of {len(jobs)} jobs ran; rerun the same command to resume "
                           "(finished jobs are kept, the dead worker's job starts again)") from None
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return summary


def _ray_job(job: Dict[str, Any], threads: int) -> Outcome:
    import torch

    from ..progress import SilentProgress
    from ..runs.runner import run_job

    torch.set_num_threads(threads)
    job_obj = Job.from_dict(job)
    if job_obj.spec.device != "cpu":  # Ray sets CUDA_VISIBLE_DEVICES to the task's GPU
        job_obj = job_obj.replace(spec=job_obj.spec.replace(device="cuda"))
    return run_job(job_obj, SilentProgress(), _print)


class RayExecutor(Executor):
    """Ray tasks; `address` None starts a local Ray instance, "auto" joins the running cluster."""

    def __init__(self, address: Optional[str] = None, per_device: int = 1, device: str = "cpu",
                 cpus_per_job: int = 1, progress_factory=None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(f"{param('executor', 'ray')} needs Ray: pip install 'alore-bench[ray]'") from None
        if per_device < 1:
            raise UserError(f"{param('per_device', per_device)}: give at least 1 run per GPU")
        self.address, self.per_device, self.device, self.cpus_per_job = address, per_device, device, cpus_per_job
        self.progress_factory = progress_factory
        self._started = False

    def describe(self) -> str:
        return f"ray ({self.address or 'local instance'})"

    def _connect(self):
        import ray

        if not ray.is_initialized():
            self._started = True
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
            except ConnectionError as exc:
                raise UserError(f"{param('address', self.address)}: no Ray cluster there ({exc}); start one with "
                                f"`ray start --head` or leave {param('address')} out for a local instance") from None
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, jobs: Sequence[Job]) -> Summary:
        summary = Summary()
        if not jobs:
            return summary
        ray = self._connect()
        if self.device.startswith("cuda"):
            options = {"num_gpus": 1.0 / self.per_device, "num_cpus": self.cpus_per_job}
        else:
            options = {"num_cpus": self.cpus_per_job}
        remote = ray.remote(**options)(_ray_job)
        pending = [remote.remote(job.to_dict(), self.cpus_per_job) for job in jobs]
        try:
            with jobs_bar(self.progress_factory, jobs, self.describe()) as finished:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    try:
                        summary.count(ray.get(done[0]))
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.as_instanceof_cause()
                        if isinstance(cause, UserError):
                            raise UserError(cause.template.splitlines()[0]) from None
                        raise
                    finished()
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        return summary


# kind -> (options, device, progress_factory, say) -> Executor
EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor", param("executor"))
EXECUTORS.register("local", lambda options, device, progress_factory=None, say=None:
                   LocalExecutor(progress_factory, say))
EXECUTORS.register("workers", lambda options, device, progress_factory=None, say=None:
                   WorkerExecutor(options.workers, options.per_device, device, progress_factory))
EXECUTORS.register("ray", lambda options, device, progress_factory=None, say=None:
                   RayExecutor(options.address, options.per_device, device, options.cpus_per_job, progress_factory))


def make_executor(options: ExecutorOptions, device: str = "cpu", progress_factory=None, say=None) -> Executor:
    """The executor `options` name (see `executor_options`: local with more than one worker is workers)."""
    return EXECUTORS.get(options.kind)(options, device, progress_factory, say)
