"""Claims: one run of a job at a time across processes and machines sharing a results folder.

A claim is an exclusive POSIX record lock (fcntl.lockf) on a small file beside the job's record,
held while the job runs. The operating system releases it when its owner exits or dies (on a
shared NFS folder, when the owner's lease ends), so a claim whose owner died is free to take
over without heartbeats or timeouts. The file also names its owner (host, pid, start time) for
messages. Whoever acquires a claim re-checks the record before running: a job another process
finished meanwhile is not run twice. POSIX locks exclude other processes, not other threads of
the holder: workers must be processes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional


class Claim:
    def __init__(self, path: Path, handle):
        self.path, self._handle = path, handle

    @classmethod
    def acquire(cls, record: Path, wait: bool = False, job: Optional[Dict[str, Any]] = None) -> "Optional[Claim]":
        """The claim on `record`'s job, or None while another live process holds it (with `wait`,
        block until its owner finishes or dies instead). `job` describes the job for `running`."""
        path = record.with_name(f".{record.name}.claim")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                                 "job": job or {}}))
        handle.flush()
        return cls(path, handle)

    @staticmethod
    def owner(record: Path) -> str:
        """Who holds (or last held) the claim on `record`'s job, for messages."""
        try:
            info = json.loads(record.with_name(f".{record.name}.claim").read_text(encoding="utf-8"))
            return f"{info['host']} pid {info['pid']}"
        except (OSError, ValueError, KeyError):
            return "another process"

    @staticmethod
    def running(results_dir: Path) -> List[Dict[str, Any]]:
        """The claims under `results_dir` held now by a live process: what is running, with its
        owner and job description. (Probing a lock from a process that holds locks on the same
        files would drop them, POSIX-style: call this from a process that runs no jobs.)"""
        out = []
        for path in Path(results_dir).rglob(".*.claim"):
            try:
                with open(path, "r+", encoding="utf-8") as handle:
                    try:
                        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:  # held: its owner is alive and running the job
                        info = json.loads(handle.read() or "{}")
                        out.append({**info, "claim": str(path)})
                    else:
                        fcntl.lockf(handle, fcntl.LOCK_UN)  # free: a dead owner's leftover
            except (OSError, ValueError):
                continue
        return out

    def release(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        fcntl.lockf(self._handle, fcntl.LOCK_UN)
        self._handle.close()

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
