"""What running jobs gives back: one Outcome per job, added up into a Summary (plain data, so
worker processes and Ray tasks return them as they are)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

STATUSES = ("ran", "skipped", "busy", "failed")


@dataclass(frozen=True)
class Outcome:
    """One job: `ran` (a new ok record), `skipped` (an identical record exists, or appeared
    meanwhile), `busy` (another process holds its claim) or `failed` (a failed record, or none
    written). `lines` are what the user is told about it, in order."""

    status: str
    path: Path
    lines: Tuple[str, ...] = ()
    error: Optional[str] = None
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds per phase (runs.phases)


@dataclass
class Summary:
    ran: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)
    failed: List[tuple] = field(default_factory=list)
    busy: List[Path] = field(default_factory=list)  # skipped: another process was running them

    def add(self, other: "Summary") -> "Summary":
        for name in ("ran", "skipped", "failed", "busy"):
            getattr(self, name).extend(getattr(other, name))
        return self

    def count(self, outcome: Outcome) -> "Summary":
        if outcome.status == "ran":
            self.ran.append(outcome.path)
        elif outcome.status == "failed":
            self.failed.append((outcome.path, outcome.error))
        else:
            self.skipped.append(outcome.path)
            if outcome.status == "busy":
                self.busy.append(outcome.path)
        return self

    @property
    def paths(self) -> List[Path]:
        """Every record path the jobs ran or found (failed ones too)."""
        return [*self.ran, *self.skipped, *(p for p, _e in self.failed)]

    def line(self) -> str:
        return f"{len(self.ran)} run, {len(self.skipped)} skipped, {len(self.failed)} failed"
