"""Where one job's wall time goes: the runner and the trial mark the end of each phase (resolve,
weights, claim, data, environment, build, train, merge, evaluate, record), and the seconds since the previous
mark go to that phase. The record keeps the phases up to its own writing; the outcome has them all
(benchmarks/job_overhead.py reads both)."""

from __future__ import annotations

import time
from typing import Dict


class PhaseClock:
    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: Dict[str, float] = {}

    def mark(self, phase: str) -> None:
        """The time since the previous mark (or the start) was spent in `phase`."""
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now
