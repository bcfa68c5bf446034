"""The runner: one job in, one outcome out. It files the job under its configuration's identity,
reuses an identical record, refuses to mix prepared data within a row, claims the job against
other processes, runs the trial and writes exactly one record (rescued to a temporary folder
when the disk is full). Whichever executor calls it, the record is the same."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from ..config import stable_hash
from ..data.cache import read_manifest
from ..engine import Progress, TrainCheckpoint, precision
from ..env import environment
from ..errors import UserError, param
from ..io import Claim
from ..tuning import base_identity
from . import artifacts
from .hparams import Hparams, for_job
from .logs import write_tensorboard
from .outcome import Outcome
from .phases import PhaseClock
from .record import (data_fingerprint, previous_outcome, read_record, record_path, seeds_from_other_data,
                     spec_identity, write_record)
from .spec import Job, RunSpec, resolve_protocol
from .trial import TrialInputs, run_trial


def save_record(path: Path, results_dir: Path, record: Mapping[str, Any]) -> tuple:
    """Write the record; a failed write (a full disk) is retried, then the result is kept in a
    fallback folder. Returns (where it was written, a line for the user or None)."""
    for attempt in range(2):
        try:
            write_record(path, record)
            return path, None
        except OSError as exc:
            error = exc
            if attempt == 0:
                time.sleep(1.0)
    rescue = Path(tempfile.gettempdir()) / "alore-bench-rescued" / path.relative_to(results_dir)
    write_record(rescue, record)
    return rescue, (f"could not write {path} ({error.strerror or error}); the result is kept in {rescue}: "
                    f"move it to {path} once there is room")


def stale_hparams(path: Path, hparams: Mapping[str, Any]) -> bool:
    """Whether the record at `path` ran with other hyper-parameters than `hparams` select now."""
    try:
        recorded = (read_record(path).get("config") or {}).get("hparams") or {}
    except (OSError, ValueError):
        return True
    return (recorded.get("source"), recorded.get("point")) != (hparams.get("source"), hparams.get("point"))


def reusable(spec: RunSpec, path: Path, fingerprint: Mapping[str, Any], hparams: Hparams) -> Optional[str]:
    """'same' when the record at `path` is this job's result and can stand, 'other-data' when it was
    made from other prepared data, None when the job has to run."""
    outcome = previous_outcome(path, fingerprint)
    if outcome == "same" and spec.save_adapters and not path.with_suffix(".safetensors").exists():
        return None  # the identical run saved no adapter: run it again to save one
    if outcome == "same" and spec.grid is None and spec.stage == "final" and stale_hparams(path, hparams.describe):
        return None  # tuning selected another point since (or finished): run with the new one
    return outcome


def run_job(job: Job, progress: Progress, say: Callable[[str], None] = lambda line: None) -> Outcome:
    """Run one job in this process. `say` hears the lines of the job as they happen (they are also
    in the outcome)."""
    clock = PhaseClock()
    task = job.spec.suite_spec.select([job.task])[0]
    manifest = read_manifest(job.spec.data_dir, task)
    spec = resolve_protocol(job.spec, {task.name: manifest["source"]["kind"]})  # as preflight did
    device = torch.device(spec.device)
    source = spec.backbone_spec.resolve_weights(spec.weights, spec.data_dir)
    identity = spec_identity(spec, source.describe(), {"device": device.type, "precision": precision(device)})
    hparams = for_job(spec, task.name, identity)
    identity = hparams.identity
    lines = list(hparams.notes)
    for line in lines:
        say(line)
    train_split, eval_split = spec.suite_spec.stage_splits(spec.stage)
    fingerprint = data_fingerprint(manifest, (train_split, eval_split))
    path = record_path(spec.results_dir, identity, task.name, job.seed)

    def finish(status: str, line: str, error: Optional[str] = None) -> Outcome:
        say(line)
        return Outcome(status, path, tuple(lines + [line]), error, dict(clock.seconds))

    outcome = reusable(spec, path, fingerprint, hparams)
    if outcome == "same" and not spec.force:
        return finish("skipped", f"skip {task.name} seed {job.seed}: identical record exists at {path} "
                                 f"({param('force', True)} reruns)")
    if outcome == "other-data" and not spec.force:
        raise UserError(f"{path} holds a result made from different prepared data for {task.name}: pass "
                        f"{param('force', True)} to replace it, or use another {param('results_dir')}")
    others = [] if spec.force or outcome else seeds_from_other_data(path, fingerprint)
    if others:
        shown = ", ".join(map(str, others))
        raise UserError(f"{path.parent}: seeds {shown} of this configuration were made from different prepared "
                        f"data for {task.name}; seed {job.seed} would join them in one row: pass "
                        f"{param('force', True)} {param('seeds', f'{shown},{job.seed}')} to rerun them all, or use "
                        f"another {param('results_dir')}")
    clock.mark("resolve")
    pretrained = artifacts.pretrained_state(spec.backbone_spec, source)
    clock.mark("weights")
    claim = Claim.acquire(path, wait=job.wait, job={
        "suite": spec.suite, "backbone": spec.backbone, "variant": spec.variant, "method": spec.method,
        "stage": spec.stage, "task": task.name, "seed": job.seed})
    if claim is None:  # another process or machine runs this job now
        return finish("busy", f"skip {task.name} seed {job.seed}: running in {Claim.owner(path)}")
    with claim:
        if not spec.force and reusable(spec, path, fingerprint, hparams) == "same":
            return finish("skipped", f"skip {task.name} seed {job.seed}: finished meanwhile by another process "
                                     f"-> {path}")
        clock.mark("claim")
        splits = artifacts.task_splits(spec.data_dir, task, (train_split, eval_split), fingerprint)
        clock.mark("data")
        checkpoint = TrainCheckpoint(path.with_name(f".{path.stem}.ckpt"), spec.checkpoint_every,
                                     f"{stable_hash(identity)}/seed{job.seed}", say)
        env = environment(device)
        clock.mark("environment")
        inputs = TrialInputs(spec, task, job.seed, hparams, stable_hash(identity), pretrained, source, fingerprint,
                             splits, env, clock)
        record = run_trial(inputs, progress, path.with_suffix(".safetensors") if spec.save_adapters else None,
                           checkpoint)
        if spec.grid is not None:  # a tuning run: where it sits in its grid
            record["tuning"] = {"base": base_identity(identity, spec.grid.keys), "grid": spec.grid.describe(),
                                "point": spec.point, "index": spec.grid_index}
        if "tensorboard" in spec.log and record["status"] == "ok":
            record["tensorboard"] = write_tensorboard(spec.results_dir, path, record)
        written, rescue_line = save_record(path, spec.results_dir, record)
        if written == path:
            checkpoint.remove()  # the record holds the result now
        clock.mark("record")
    if rescue_line:
        lines.append(rescue_line)
        say(rescue_line)
    if written != path:
        return Outcome("failed", path, tuple(lines), f"not written; kept in {written}", dict(clock.seconds))
    if record["status"] == "ok":
        return finish("ran", f"{task.name} seed {job.seed}: top-1 {record['metrics']['top1']:.2f} "
                             f"(train {record['timing']['train_seconds']:.1f}s) -> {path}")
    return finish("failed", f"{task.name} seed {job.seed}: FAILED: {record['error']} -> {path}", record["error"])
