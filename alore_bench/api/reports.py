"""Reports from records: `report` (what `alore-bench report` prints or writes), and the frame,
table and Markdown pieces for notebooks."""

from __future__ import annotations

from typing import Any, List, Optional

from ..paths import PathLike, as_path
from ..reporting.build import build_report as report  # noqa: F401 (the API's report is the builder itself)


def load_frame(results_dir: PathLike = "results"):
    """Every record under `results_dir` as a pandas frame, one row per record (what `report` reads)."""
    from ..reporting import records_frame
    from ..runs.record import load_records

    return records_frame(load_records(as_path(results_dir))[0])


def suite_table(frame, suite: str, stage: str = "final", tasks: Optional[List[str]] = None):
    """The paper-style table of one suite and stage from a records frame."""
    from ..data.suites import SUITES
    from ..reporting import suite_table as table_of

    return table_of(frame, SUITES.get(suite), tasks=tasks, stage=stage)


def render_markdown(table, **options: Any) -> str:
    """A table as the Markdown `alore-bench report --out table.md` writes."""
    from ..reporting import to_markdown

    return to_markdown(table, **options)
