"""The ground floor of everything that writes: atomic file writes, writable-folder checks, claims
(one run of a job at a time across processes and machines) and the leftovers of killed processes.

Claims: an exclusive POSIX record lock (fcntl.lockf) on a small file beside the job's record,
held while the job runs. The operating system releases it when its owner exits or dies (on a
shared NFS folder, when the owner's lease ends), so a claim whose owner died is free to take
over without heartbeats or timeouts. The file also names its owner (host, pid, start time) for
messages. Whoever acquires a claim re-checks the record before running: a job another process
finished meanwhile is not run twice. POSIX locks exclude other processes, not other threads of
the holder: workers must be processes.

Leftovers: temporary files and folders (`.<name>.tmp-PID`), a task folder moved aside while
`prepare --force` swapped it in (`.<task>.old-PID`), write probes. They are removed, or, for a
task hidden by a kill between the two renames of a swap, put back, at the next start of a
command that uses the folder. A leftover is stale when its process is gone and nothing touched it
for a while: on a shared folder, a PID alone cannot tell a dead local process from a live one on
another machine.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .errors import UserError, param


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never a partial one."""
    path = Path(path)
    if path.exists() and not path.is_file():  # never replace a device or a pipe (as root: /dev/null)
        raise UserError(f"{path}: is {_kind(path)}, not a file; give the name of a regular file")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves no partial temporary file behind
        raise


def _kind(path: Path) -> str:
    return "a folder" if path.is_dir() else "a file" if path.is_file() else "not a regular file (a device, pipe or socket)"


def _first_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder_path(folder: Optional[Path], name: str, must_exist: bool = False) -> None:
    """`folder` is a folder, or could be made one (nothing on its way is a file); checked before any
    work, writes nothing. With `must_exist`, a missing folder is a mistake too."""
    if folder is None:
        return
    folder = Path(folder)
    where = f"{param(name, folder)}"
    if folder.exists():
        if not folder.is_dir():
            raise UserError(f"{where}: is {_kind(folder)}, not a folder; pass a folder")
        return
    if must_exist:
        raise UserError(f"{where}: no such folder; check the path")
    ancestor = _first_existing(folder)
    if not ancestor.is_dir():
        raise UserError(f"{where}: cannot be made, {ancestor} is {_kind(ancestor)}; pass a folder")


def check_input_file(path: Optional[Path], name: str, suffix: str) -> None:
    """`path` is an existing regular file named `*<suffix>` (read by a later step; checked first)."""
    if path is None:
        return
    path = Path(path)
    where = f"{param(name, path)}"
    if not path.exists():
        raise UserError(f"{where}: no such file; check the path")
    if not path.is_file():
        raise UserError(f"{where}: is {_kind(path)}; give a {suffix} file")
    if path.suffix.lower() != suffix:
        raise UserError(f"{where}: expected a {suffix} file")


def check_output_file(path: Optional[Path], name: str, example: str) -> None:
    """`path` can be written as a regular file: not a folder, not a device, its folder makeable
    (`example`: a file name to suggest)."""
    if path is None:
        return
    path = Path(path)
    where = f"{param(name, path)}"
    if path.is_dir():
        raise UserError(f"{where}: is a folder; give a file name such as {path / example}")
    if path.exists() and not path.is_file():
        raise UserError(f"{where}: is {_kind(path)}; give the name of a regular file such as {example}")
    ancestor = _first_existing(path.parent)
    if not ancestor.is_dir():
        raise UserError(f"{where}: cannot be written, {ancestor} is {_kind(ancestor)}; give a path in a folder")


def check_writable_folder(folder: Path, name: str, need_bytes: int = 0) -> None:
    """`folder` is (or can be made) a folder this process can write to, with `need_bytes` free
    (a probe file is written and removed). `name` is the parameter the folder came from."""
    where = f"{param(name)} {folder}"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{where}: is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".alore-bench-probe-{os.getpid()}"
        probe.write_text("probe", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{where}: not writable ({exc.strerror or exc}); pass a folder you can write to") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise UserError(f"{where}: only {free / 2**20:.0f} MiB free, a run needs at least "
                        f"{need_bytes / 2**20:.0f} MiB; free some space or pass another {param(name)}")


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


LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$|^\.alore-bench-probe-(?P<probe>\d+)$")
QUIET_SECONDS = 600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_touched(path: Path) -> float:
    if path.is_dir() and not path.is_symlink():
        times = [p.lstat().st_mtime for p in path.rglob("*")]
        return max(times + [path.lstat().st_mtime])
    return path.lstat().st_mtime


def stale_leftovers(paths: Iterable[Path], quiet_seconds: float = QUIET_SECONDS) -> List[Path]:
    now = time.time()
    out = []
    for path in paths:
        match = LEFTOVER.match(path.name)
        if not match:
            continue
        pid = int(match.group("pid") or match.group("probe"))
        try:
            if pid != os.getpid() and not _alive(pid) and now - _last_touched(path) >= quiet_seconds:
                out.append(path)
        except FileNotFoundError:  # removed meanwhile
            continue
    return out


def clean(paths: Iterable[Path], quiet_seconds: float = QUIET_SECONDS) -> List[str]:
    """Remove stale leftovers among `paths`; restore a task folder a killed swap left aside.
    Returns one line per action, for the user."""
    done = []
    for path in stale_leftovers(paths, quiet_seconds):
        match = LEFTOVER.match(path.name)
        original = path.with_name(match.group("name")) if match.group("name") else None
        try:
            if match.group("kind") == "old" and original is not None and not original.exists():
                os.replace(path, original)
                done.append(f"restored {original} (a killed `prepare --force` had moved it aside)")
            elif path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                done.append(f"removed {path} (left by a killed process)")
            else:
                path.unlink()
                done.append(f"removed {path} (left by a killed process)")
        except FileNotFoundError:
            continue
    return done


def clean_tree(root: Path, quiet_seconds: float = QUIET_SECONDS) -> List[str]:
    """Stale leftovers anywhere under `root` (results dirs: temporary record files)."""
    if not root.is_dir():
        return []
    return clean((p for p in root.rglob(".*") if LEFTOVER.match(p.name)), quiet_seconds)


def clean_children(folder: Path, quiet_seconds: float = QUIET_SECONDS) -> List[str]:
    """Stale leftovers directly in `folder` (a suite's data folder: staging and swapped task folders)."""
    if not folder.is_dir():
        return []
    return clean(folder.iterdir(), quiet_seconds)
