"""Where things live by default: the prepared-data folder and the published weights folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

DATA_ENV = "ALORE_BENCH_DATA"
WEIGHTS_ENV = "ALORE_BENCH_WEIGHTS"

PathLike = Union[str, "os.PathLike[str]"]


def as_path(value: Optional[PathLike]) -> Optional[Path]:
    """A str or Path argument as a Path (None stays None): every API path accepts both."""
    return None if value is None else Path(value).expanduser()


def default_data_dir(explicit: Optional[PathLike] = None) -> Path:
    """data_dir, else $ALORE_BENCH_DATA, else ~/.cache/alore-bench/data."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path.home() / ".cache" / "alore-bench" / "data"


def weights_folder(data_dir: Optional[PathLike]) -> Path:
    """Where published weight files are looked for by name: $ALORE_BENCH_WEIGHTS, else <data dir>/weights."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    return Path(data_dir or ".") / "weights"
