"""Folder checks several floors need before they write: one line naming the option and the fix."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from .errors import UserError


def check_writable_folder(folder: Path, option: str, need_bytes: int = 0) -> None:
    """`folder` is (or can be made) a folder this process can write to, with `need_bytes` free
    (a probe file is written and removed)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder}: is a file, not a folder; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".alore-bench-probe-{os.getpid()}"
        probe.write_text("probe", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{option} {folder}: not writable ({exc.strerror or exc}); pass a folder you can write to") \
            from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise UserError(f"{option} {folder}: only {free / 2**20:.0f} MiB free, a run needs at least "
                        f"{need_bytes / 2**20:.0f} MiB; free some space or pass another {option}")


WEIGHTS_ENV = "ALORE_BENCH_WEIGHTS"


def weights_folder(data_dir: Optional[Path]) -> Path:
    """Where published weight files are looked for by name: $ALORE_BENCH_WEIGHTS, else <data dir>/weights."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    return Path(data_dir or ".") / "weights"
