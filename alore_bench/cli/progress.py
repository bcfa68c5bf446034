"""Progress for long work: rich's bar (with a time estimate) in a terminal; off a terminal (a log
file, CI, a batch job), plain lines now and then for each task still running, so that a
15-minute `bench` shows that it moves and how far it has to go without filling a log with bars.

Both offer what the engine and the executors call: add_task, advance, update, remove_task, a
`console` to print lines above the bar, and use as a context manager."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

# Seconds between two plain lines of one task ($ALORE_BENCH_PROGRESS_SECONDS; 0: every update).
DEFAULT_EVERY = 30.0


def plain_every() -> float:
    text = os.environ.get("ALORE_BENCH_PROGRESS_SECONDS", "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_EVERY
    except ValueError:
        return DEFAULT_EVERY


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class _Task:
    description: str
    total: Optional[float]
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_said: float = field(default_factory=time.monotonic)

    def line(self, now: float) -> str:
        elapsed = now - self.started
        if not self.total:
            return f"{self.description}: {self.completed:g} done, {_clock(elapsed)} elapsed"
        share = self.completed / self.total
        left = f", about {_clock(elapsed * (1 - share) / share)} left" if 0 < share < 1 else ""
        return (f"{self.description}: {self.completed:g}/{self.total:g} ({share:.0%}), {_clock(elapsed)} elapsed"
                f"{left}")


class PlainProgress:
    """Periodic lines instead of a bar: a task that runs longer than `every` seconds says where it
    is once per `every` seconds (and nothing otherwise: short work stays quiet)."""

    def __init__(self, console, every: Optional[float] = None, clock: Callable[[], float] = time.monotonic):
        self.console = console
        self.every = plain_every() if every is None else every
        self.clock = clock
        self.tasks: Dict[int, _Task] = {}
        self._next = 0

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.tasks.clear()

    def add_task(self, description: str, total: Optional[float] = None, **_: Any) -> int:
        self._next += 1
        now = self.clock()
        self.tasks[self._next] = _Task(description, total, started=now, last_said=now)
        return self._next

    def advance(self, task_id: int, amount: float = 1) -> None:
        task = self.tasks.get(task_id)
        if task is not None:
            task.completed += amount
            self._maybe_say(task)

    def update(self, task_id: int, description: Optional[str] = None, total: Optional[float] = None,
               completed: Optional[float] = None, advance: Optional[float] = None, **_: Any) -> None:
        task = self.tasks.get(task_id)
        if task is None:
            return
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        self._maybe_say(task)

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)

    def _maybe_say(self, task: _Task) -> None:
        now = self.clock()
        if now - task.last_said >= self.every:
            task.last_said = now
            self.console.print(task.line(now), highlight=False, markup=False, soft_wrap=True)


def progress_bar(console):
    """rich's bar on a terminal, plain periodic lines elsewhere."""
    if not console.is_terminal:
        return PlainProgress(console)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=True)
