"""Leftovers of killed processes: temporary files and folders (`.<name>.tmp-PID`), a task folder
moved aside while `prepare --force` swapped it in (`.<task>.old-PID`), write probes. They are
removed, or, for a task hidden by a kill between the two renames of a swap, put back, at the next
start of a command that uses the folder.

A leftover is stale when its process is gone and nothing touched it for a while: on a shared
folder, a PID alone cannot tell a dead local process from a live one on another machine."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Iterable, List

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
