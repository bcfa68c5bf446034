"""Records -> paper-style tables: one per (suite, stage), rows keyed by configuration, per-task
mean +- std over seeds, group means with spread from per-seed means, visible gaps, the settings
that tell the rows apart, and the runs that failed."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..config import stable_hash
from ..data.suites import Suite
from .frame import ROW_KEYS, SETTINGS

MEAN_GROUPS = "Mean (groups)"  # the VTAB-1k convention: mean of the group means
MEAN_TASKS = "Mean (tasks)"  # the other convention: mean over all tasks
STAGES = ("final", "tune")
STAGE_LABEL = {"final": "test", "tune": "validation (tuning stage)"}


@dataclass
class Cell:
    mean: float
    std: Optional[float]
    n: int


@dataclass
class Row:
    key: Tuple[str, str, str]
    cells: Dict[str, Cell]  # task and group-mean columns
    params_m: Optional[float]  # trainable parameters without the head, mean over the row's tasks
    seeds: List[int]
    missing: List[str] = field(default_factory=list)  # what keeps the row from being complete
    params_with_head_m: Optional[float] = None  # with the head, mean over the row's tasks
    protocol: Optional[str] = None
    method_config: Dict[str, Any] = field(default_factory=dict)
    preset: Optional[str] = None
    settings: Dict[str, str] = field(default_factory=dict)  # every setting, as shown
    params_per_task: Dict[str, Tuple[Optional[float], Optional[float]]] = field(default_factory=dict)
    data_per_task: Dict[str, str] = field(default_factory=dict)  # task -> prepared data's key
    points: Dict[str, str] = field(default_factory=dict)  # tuned rows: task -> the selected grid point
    # What a published row's delta must share (None: unrecorded; "mixed": differs between records).
    release: Optional[str] = None
    mean_std: Optional[str] = None
    selection: Optional[str] = None

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}@{self.key[2]}"


@dataclass
class SuiteTable:
    suite: Suite
    rows: List[Row]
    reference: List[Dict[str, Any]] = field(default_factory=list)
    stage: str = "final"
    # Judged on some tasks only (a task filter, a study's tasks): (tasks shown, tasks of the suite).
    partial: Optional[Tuple[int, int]] = None
    failed: List[str] = field(default_factory=list)  # failed runs of this suite and stage
    varying: List[str] = field(default_factory=list)  # settings that differ between the rows
    # Variant and method options that differ between rows of one method (other methods lack them).
    varying_by_method: Dict[str, List[str]] = field(default_factory=dict)
    duplicates: List[str] = field(default_factory=list)  # identical copies of a record, counted once
    splits: List[str] = field(default_factory=list)  # configurations split by data or precision

    @property
    def task_columns(self) -> List[str]:
        return [t.name for g in self.suite.groups for t in self.suite.tasks if t.group == g]

    def columns(self) -> List[Tuple[str, str]]:
        """(column, group) in display order: each group's tasks then its mean, then the overall means."""
        out: List[Tuple[str, str]] = []
        for group in self.suite.groups:
            out += [(t.name, group) for t in self.suite.tasks if t.group == group]
            if len(self.suite.groups) > 1:
                out.append((f"{group} mean", group))
        if len(self.suite.groups) > 1:
            out.append((MEAN_GROUPS, ""))
        out.append((MEAN_TASKS, ""))
        return out

    def is_mean(self, column: str) -> bool:
        return column in (MEAN_GROUPS, MEAN_TASKS) or column.endswith(" mean")

    def column_label(self, column: str) -> str:
        """A task's display name; a mean over only some of the suite's tasks says so."""
        names = {t.name: t.display or t.name for t in self.suite.tasks}
        if column in names:
            return names[column]
        if self.partial and self.is_mean(column):
            return f"{column} [{self.partial[0]} of {self.partial[1]} tasks]"
        return column

    def varying_for(self, row: Row) -> List[str]:
        return self.varying + self.varying_by_method.get(row.key[1], [])

    def settings_text(self, row: Row) -> str:
        """The row's values of the settings that vary in this table (compact, `key=value`)."""
        return ", ".join(f"{k}={row.settings.get(k, '—')}" for k in self.varying_for(row)) or "—"

    @property
    def any_varying(self) -> bool:
        return bool(self.varying or any(self.varying_by_method.values()))


def _mean_std(values: Sequence[float]) -> Cell:
    values = [v for v in values if v is not None and not math.isnan(v)]
    std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
    return Cell(float(np.mean(values)), std, len(values))


def _setting(values: pd.Series, tuned: bool) -> str:
    distinct = sorted({_text(v) for v in values if _text(v) != "—"})
    if not distinct:
        return "—"
    if len(distinct) == 1:
        return distinct[0]
    return "tuned" if tuned else "mixed"


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def data_per_task(records: pd.DataFrame) -> Dict[str, str]:
    if "data" not in records.columns:
        return {}
    return {t: _text(d) for t, d in zip(records["task"], records["data"]) if _text(d) != "—"}


def _data_text(pairs: Mapping[str, str]) -> str:
    return stable_hash(sorted(pairs.items()), length=6) if pairs else "—"


def compare_data_on_shared_tasks(rows: Sequence[Row]) -> None:
    """Rows over different tasks do not differ in data for that alone: each row's `data` setting
    is named by the tasks whose prepared data differs between rows (the same for all rows, so not
    shown, when no shared task differs)."""
    tasks = {t for row in rows for t in row.data_per_task}
    contested = {t for t in tasks if len({row.data_per_task[t] for row in rows if t in row.data_per_task}) > 1}
    for row in rows:
        row.settings["data"] = _data_text({t: d for t, d in row.data_per_task.items() if t in contested}) \
            if contested else "same"


def row_settings(records: pd.DataFrame) -> Dict[str, str]:
    tuned = "tuned" in set(records["hparams"].dropna())
    keys = SETTINGS + sorted(c for c in records.columns if c.startswith("opt."))
    settings = {key: _setting(records[key], tuned) for key in keys if key in records.columns}
    if "data" in records.columns:  # each task has its own data: name the row's whole set of them
        settings["data"] = _data_text(data_per_task(records))
    return settings


def build_row(key: Tuple[str, str, str], records: pd.DataFrame, suite: Suite) -> Row:
    """One table row; group and overall means only where every task (and every seed of the row)
    is present, with spread taken over per-seed means, never over tasks."""
    by_task = {task: grp.set_index("seed")["top1"] for task, grp in records.groupby("task")}
    seeds = sorted(int(s) for s in records["seed"].unique())
    cells: Dict[str, Cell] = {t: _mean_std(list(v.values)) for t, v in by_task.items()}
    missing: List[str] = []
    for task in suite.tasks:
        if task.name not in by_task:
            missing.append(f"{task.name}: no result")
        else:
            lacking = sorted(set(seeds) - set(int(s) for s in by_task[task.name].index))
            if lacking:
                missing.append(f"{task.name}: seeds {', '.join(map(str, lacking))} missing")

    def per_seed_mean(tasks: List[str]) -> Optional[Cell]:
        if any(t not in by_task for t in tasks):
            return None
        common = sorted(set.intersection(*(set(int(s) for s in by_task[t].index) for t in tasks)))
        if set(common) != set(seeds):
            return None  # a seed lacks a task: no honest mean for the group
        return _mean_std([float(np.mean([by_task[t][s] for t in tasks])) for s in common])

    group_means = {}
    for group in suite.groups:
        tasks = [t.name for t in suite.tasks if t.group == group]
        group_means[group] = per_seed_mean(tasks)
        if group_means[group] is not None and len(suite.groups) > 1:
            cells[f"{group} mean"] = group_means[group]
    if all(group_means[g] is not None for g in suite.groups):
        if len(suite.groups) > 1:
            per_seed = [float(np.mean([np.mean([by_task[t.name][s] for t in suite.tasks if t.group == g])
                                       for g in suite.groups])) for s in seeds]
            cells[MEAN_GROUPS] = _mean_std(per_seed)
        cells[MEAN_TASKS] = per_seed_mean([t.name for t in suite.tasks])
    per_task = records.drop_duplicates("task")  # budgets can differ per task (per-task presets), never per seed

    def mean_m(column: str) -> Optional[float]:
        values = per_task[column].dropna()
        return float(values.mean()) / 1e6 if len(values) else None

    def millions(value: Any) -> Optional[float]:
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value) / 1e6

    def one(column: str) -> Optional[str]:
        values = set(records[column].dropna()) if column in records.columns else set()
        return None if not values else values.pop() if len(values) == 1 else "mixed"

    first = records.iloc[0]
    return Row(key, cells, mean_m("trainable_without_head"), seeds, missing,
               release=one("release"), mean_std=one("mean_std"), selection=one("selection"),
               params_with_head_m=mean_m("trainable"), protocol=first.get("protocol"),
               method_config=json.loads(first.get("method_config") or "{}"), preset=first.get("preset"),
               settings=row_settings(records), data_per_task=data_per_task(records),
               points={r["task"]: r["point"] for _, r in per_task.iterrows() if isinstance(r.get("point"), str)},
               params_per_task={r["task"]: (millions(r["trainable_without_head"]), millions(r["trainable"]))
                                for _, r in per_task.iterrows()})


PER_METHOD = ("variant",)  # with the method options: compared only between rows of one method


def varying_settings(rows: Sequence[Row]) -> Tuple[List[str], Dict[str, List[str]]]:
    """What tells the rows apart: the shared settings whose values differ between rows, and per
    method, the variant and options whose values differ between that method's rows."""
    shared = [k for k in SETTINGS if k not in PER_METHOD and len({row.settings.get(k, "—") for row in rows}) > 1]
    by_method: Dict[str, List[str]] = {}
    for method in sorted({row.key[1] for row in rows}):
        mine = [row for row in rows if row.key[1] == method]
        keys = list(PER_METHOD) + sorted({k for row in mine for k in row.settings if k.startswith("opt.")})
        changing = [k for k in keys if len({row.settings.get(k, "—") for row in mine}) > 1]
        if changing:
            by_method[method] = changing
    return shared, by_method


def one_per_seed(ok: pd.DataFrame) -> Tuple[pd.DataFrame, Dict[Tuple[str, str, str], List[str]], List[str]]:
    """One record per (row, task, seed): copies with the same top-1 count once (and are listed),
    copies that disagree and non-finite top-1 values are left out and mark their row. Returns the
    kept records, per row what was left out, and warnings about counted-once copies."""
    problems: Dict[Tuple[str, str, str], List[str]] = {}
    warnings: List[str] = []
    keep = []
    for (backbone, method, config, task, seed), group in ok.groupby(ROW_KEYS + ["task", "seed"], sort=False):
        key = (backbone, method, config)
        values = [float(v) if v is not None else float("nan") for v in group["top1"]]
        paths = ", ".join(str(p) for p in group["path"])
        if not all(math.isfinite(v) for v in values):
            problems.setdefault(key, []).append(f"{task} seed {seed}: non-finite top-1 in {paths}")
        elif len(group) > 1 and len(set(values)) > 1:
            problems.setdefault(key, []).append(f"{task} seed {seed}: {len(group)} records disagree "
                                                f"({', '.join(f'{v:g}' for v in sorted(values))}): {paths}")
        else:
            if len(group) > 1:
                warnings.append(f"{task} seed {seed} of {backbone}/{method}@{config}: {len(group)} identical "
                                f"copies counted once: {paths}")
            keep.append(group.index[0])
    return ok.loc[keep], problems, warnings


def split_mixed(ok: pd.DataFrame) -> Tuple[pd.DataFrame, List[str]]:
    """Records of one configuration are never averaged across precisions (bf16 on CUDA, fp32 on
    CPU) or, within a task, across different prepared data: such records move to rows of their own
    (the config hash with a suffix naming the precision or the data)."""
    notes: List[str] = []
    ok = ok.copy()
    precision = ok["precision"].map(_text)
    for (backbone, method, config), group in ok.groupby(ROW_KEYS, sort=False):
        values = sorted(set(precision[group.index]))
        if len(values) > 1:
            for value in values:
                ok.loc[group.index[precision[group.index] == value], "config"] = f"{config}/{value}"
            notes.append(f"{backbone}/{method}@{config}: records of {len(values)} precisions ({', '.join(values)}), "
                         "shown as separate rows")
    data = ok["data"].map(_text)
    for (backbone, method, config, task), group in ok.groupby(ROW_KEYS + ["task"], sort=False):
        counts = data[group.index].value_counts()
        if len(counts) < 2:
            continue
        main = max(counts.index, key=lambda key: (counts[key], key))  # the data most seeds were made from
        for key in counts.index:
            if key != main:
                ok.loc[group.index[data[group.index] == key], "config"] = f"{config}/data-{key[:6]}"
        notes.append(f"{backbone}/{method}@{config} {task}: seeds made from {len(counts)} different prepared data, "
                     "shown as separate rows (data=... in Settings)")
    return ok, notes


def suite_table(frame: pd.DataFrame, suite: Suite, tasks: Optional[Sequence[str]] = None,
                stage: str = "final") -> SuiteTable:
    """The suite's table of one stage; with `tasks`, judged on those tasks only (columns,
    completeness, means labelled as over some of the tasks)."""
    full = len(suite.tasks)
    restricted = suite.restricted(list(tasks) if tasks else None)
    mine = frame[(frame["suite"] == suite.name) & (frame["stage"].fillna("final") == stage)
                 & frame["task"].isin([t.name for t in restricted.tasks])]
    failed = [f"{r['task']} {r['backbone']} {r['method']}@{r['config']} seed {r['seed']}: {r['error']}"
              for _, r in mine[mine["status"] != "ok"].iterrows()]
    ok, split = split_mixed(mine[mine["status"] == "ok"])
    ok, problems, duplicates = one_per_seed(ok)
    rows = [build_row(tuple(key), grp, restricted) for key, grp in ok.groupby(ROW_KEYS, sort=True)]
    for row in rows:
        row.missing = problems.pop(row.key, []) + row.missing
    for key, lost in problems.items():  # rows with no valid record left at all
        failed += [f"{'/'.join(key[:2])}@{key[2]}: {item}" for item in lost]
    partial = (len(restricted.tasks), full) if len(restricted.tasks) < full else None
    compare_data_on_shared_tasks(rows)
    shared, by_method = varying_settings(rows)
    return SuiteTable(restricted, rows, stage=stage, partial=partial, failed=failed, varying=shared,
                      varying_by_method=by_method, duplicates=duplicates, splits=split)


def suite_tables(frame: pd.DataFrame, suites: Sequence[Suite], stages: Sequence[str] = ("final",),
                 tasks: Optional[Sequence[str]] = None) -> List[SuiteTable]:
    """One table per suite and stage that has records (successful or failed)."""
    tables = []
    for suite in suites:
        names = [t for t in (tasks or []) if t in suite.task_names] or None
        if tasks and not names:
            continue
        for stage in stages:
            table = suite_table(frame, suite, names, stage)
            if table.rows or table.failed:
                tables.append(table)
    return tables


def overall_column(suite: Suite) -> str:
    return MEAN_GROUPS if len(suite.groups) > 1 else MEAN_TASKS
