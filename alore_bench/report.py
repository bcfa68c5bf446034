"""Turn result records into a per-task Top-1 table with group means (paper layout)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from .data.suites import Suite
from .records import load_records

ROW_KEYS = ["backbone", "method", "config"]


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long form: one row per record."""
    rows = []
    for r in records:
        rows.append({
            "suite": r.get("suite"), "task": r.get("task"), "group": r.get("group"),
            "backbone": r.get("backbone"), "method": r.get("method"), "config": r.get("config_hash"),
            "seed": r.get("seed"), "status": r.get("status"),
            "top1": (r.get("metrics") or {}).get("top1"),
            "trainable_without_head": (r.get("params") or {}).get("trainable_without_head"),
            "error": r.get("error"), "path": r.get("_path"),
        })
    columns = ["suite", "task", "group", "backbone", "method", "config", "seed", "status", "top1",
               "trainable_without_head", "error", "path"]
    return pd.DataFrame(rows, columns=columns)


@dataclass
class SuiteTable:
    suite: Suite
    table: pd.DataFrame  # index: backbone, method, config; columns: tasks, group means, mean, params, seeds
    columns: List[Tuple[str, str]]  # (column, group or "") in display order

    @property
    def empty(self) -> bool:
        return self.table.empty


def suite_table(frame: pd.DataFrame, suite: Suite) -> SuiteTable:
    ok = frame[(frame["suite"] == suite.name) & (frame["status"] == "ok")]
    ordered: List[Tuple[str, str]] = []
    for group in suite.groups:
        ordered += [(t.name, group) for t in suite.tasks if t.group == group]
        ordered.append((f"{group} mean", ""))
    ordered.append(("Mean", ""))
    if ok.empty:
        return SuiteTable(suite, pd.DataFrame(columns=[c for c, _ in ordered]), ordered)
    per_task = ok.groupby(ROW_KEYS + ["task"])["top1"].mean().unstack("task")
    per_task = per_task.reindex(columns=suite.task_names)
    table = pd.DataFrame(index=per_task.index)
    group_means = []
    for group in suite.groups:
        names = [t.name for t in suite.tasks if t.group == group]
        for name in names:
            table[name] = per_task[name]
        # A group mean is shown only when every task of the group has a result.
        table[f"{group} mean"] = per_task[names].mean(axis=1, skipna=False)
        group_means.append(f"{group} mean")
    # The VTAB-1k convention: the mean of the three group means.
    table["Mean"] = table[group_means].mean(axis=1, skipna=False)
    table["Params (M)"] = ok.groupby(ROW_KEYS)["trainable_without_head"].first() / 1e6
    table["Seeds"] = ok.groupby(ROW_KEYS)["seed"].nunique()
    return SuiteTable(suite, table, ordered + [("Params (M)", ""), ("Seeds", "")])


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if column == "Seeds":
        return str(int(value))
    if column == "Params (M)":
        return f"{value:.4g}"
    return f"{value:.1f}"


def display_rows(table: SuiteTable) -> Tuple[List[str], List[List[str]]]:
    header = ["Backbone", "Method", "Config"] + [c for c, _ in table.columns]
    rows = []
    for index, values in table.table.iterrows():
        rows.append(list(index) + [_cell(values.get(c), c) for c, _ in table.columns])
    return header, rows


def to_markdown(table: SuiteTable) -> str:
    header, rows = display_rows(table)
    lines = [f"**{table.suite.name}** Top-1 (%), mean over seeds; group means need every task of the group; "
             "Mean = mean of the group means.", "",
             "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(table: SuiteTable) -> str:
    return table.table.reset_index().to_csv(index=False)


def to_json(table: SuiteTable) -> str:
    return table.table.reset_index().to_json(orient="records", indent=2)


def render_rich(table: SuiteTable):
    from rich.table import Table

    header, rows = display_rows(table)
    groups = dict(table.columns)
    rich_table = Table(title=f"{table.suite.name}: Top-1 (%)", show_lines=False)
    for name in header:
        group = groups.get(name, "")
        label = f"{name}\n[dim]{group}[/dim]" if group else name
        rich_table.add_column(label, justify="left" if name in ("Backbone", "Method", "Config") else "right")
    for row in rows:
        rich_table.add_row(*row)
    return rich_table


def load_tables(results_dir: Path, suites: Sequence[Suite]) -> Tuple[List[SuiteTable], pd.DataFrame, list]:
    records, bad = load_records(results_dir)
    frame = records_frame(records)
    tables = [suite_table(frame, suite) for suite in suites]
    return [t for t in tables if not t.empty], frame, bad
