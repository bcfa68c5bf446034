"""Paper-style tables from result records: per-task Top-1 as mean +- std over seeds, group means
with spread from per-seed group means, both overall averaging conventions, visible gaps."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .data.suites import Suite
from .errors import UserError

ROW_KEYS = ["backbone", "method", "config"]
MEAN_GROUPS = "Mean (groups)"  # the VTAB-1k convention: mean of the group means
MEAN_TASKS = "Mean (tasks)"  # the other convention: mean over all tasks
PARAMS = "Params (M)"
PARAMS_HEAD = "+head (M)"
PROTOCOL = "Protocol"


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
            "trainable": (r.get("params") or {}).get("trainable"),
            "protocol": ((r.get("protocol") or {}).get("preset") or {}).get("name"),
            "method_config": json.dumps((r.get("config") or {}).get("method") or {}, sort_keys=True),
            "preset": (((r.get("config") or {}).get("preset")) or {}).get("name"),
            "stage": ((r.get("config") or {}).get("train") or {}).get("stage"), "variant": r.get("variant"),
            "error": r.get("error"), "path": r.get("_path"),
        })
    columns = ["suite", "task", "group", "backbone", "method", "config", "seed", "status", "top1",
               "trainable_without_head", "trainable", "protocol", "method_config", "preset", "stage", "variant",
               "error", "path"]
    return pd.DataFrame(rows, columns=columns)


def apply_filters(frame: pd.DataFrame, filters: Sequence[str]) -> pd.DataFrame:
    """`key=value[,value]` on backbone, method, suite or task."""
    for item in filters:
        key, sep, values = item.partition("=")
        if not sep or key not in ("backbone", "method", "suite", "task") or not values:
            raise UserError(f"--filter {item!r}: expected backbone|method|suite|task=VALUE[,VALUE]")
        frame = frame[frame[key].isin(values.split(","))]
    return frame


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

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}@{self.key[2]}"


@dataclass
class SuiteTable:
    suite: Suite
    rows: List[Row]
    reference: List[Dict[str, Any]] = field(default_factory=list)

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


def _mean_std(values: Sequence[float]) -> Cell:
    values = [v for v in values if v is not None and not math.isnan(v)]
    std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
    return Cell(float(np.mean(values)), std, len(values))


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

    first = records.iloc[0]
    return Row(key, cells, mean_m("trainable_without_head"), seeds, missing,
               params_with_head_m=mean_m("trainable"), protocol=first.get("protocol"),
               method_config=json.loads(first.get("method_config") or "{}"), preset=first.get("preset"))


def suite_table(frame: pd.DataFrame, suite: Suite, tasks: Optional[Sequence[str]] = None) -> SuiteTable:
    """The suite's table; with `tasks`, judged on those tasks only (columns, completeness, means)."""
    suite = suite.restricted(list(tasks) if tasks else None)
    frame = frame[frame["task"].isin([t.name for t in suite.tasks])] if tasks else frame
    ok = frame[(frame["suite"] == suite.name) & (frame["status"] == "ok")]
    rows = [build_row(tuple(key), grp, suite) for key, grp in ok.groupby(ROW_KEYS, sort=True)]
    return SuiteTable(suite, rows)


def _fmt(cell: Optional[Cell], std: bool = True) -> str:
    if cell is None:
        return "—"
    text = f"{cell.mean:.1f}"
    if std and cell.std is not None:
        text += f" ± {cell.std:.1f}"
    return text


def header_names(table: SuiteTable) -> List[str]:
    display = {t.name: t.display or t.name for t in table.suite.tasks}
    return [display.get(c, c) for c, _ in table.columns()]


def display_rows(table: SuiteTable, std: bool = True) -> Tuple[List[str], List[List[str]]]:
    header = ["Backbone", "Method", "Config"] + header_names(table) + [PARAMS, PARAMS_HEAD, PROTOCOL, "Seeds"]
    deltas = reference_deltas(table) if table.reference else {}
    if table.reference:
        header.append("Δ vs ref")
    rows = []
    fmt_m = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
    for row in table.rows:
        flag = " *" if row.missing else ""
        cells = [_fmt(row.cells.get(c), std) for c, _ in table.columns()]
        rows.append([row.key[0], row.key[1] + flag, row.key[2]] + cells +
                    [fmt_m(row.params_m), fmt_m(row.params_with_head_m), row.protocol or "—", str(len(row.seeds))])
        if table.reference:
            delta, _why = deltas.get(row.key, (None, ""))
            rows[-1].append("n/c" if delta is None and _why else "—" if delta is None else f"{delta:+.1f}")
    for ref in table.reference:
        cells = [_fmt(ref["cells"].get(c), False) for c, _ in table.columns()]
        rows.append([ref["backbone"], f"{ref['label']} [ref]", ref["ref_id"]] + cells +
                    [f"{ref['params_m']:.4g}", "—", ref["protocol_preset"] or "—", "—", ""])
    return header, rows


def protocol_warnings(table: SuiteTable) -> List[str]:
    """Rows (and reference rows) made with different input pipelines share this table."""
    ours = sorted({r.protocol or "unrecorded" for r in table.rows})
    refs = sorted({r["protocol_preset"] for r in table.reference if r.get("protocol_preset")})
    notes = []
    if len(ours) > 1:
        notes.append(f"WARNING: rows of different protocols share this table ({', '.join(ours)}): "
                     "their normalisation, resizing or data differ, so their numbers are not comparable")
    if table.reference and set(refs) - set(ours):
        notes.append(f"WARNING: reference rows come from protocols {', '.join(refs)}, this table's rows from "
                     f"{', '.join(ours)}: differences include the input pipeline")
    return notes


def footnotes(table: SuiteTable) -> List[str]:
    notes = [f"Top-1 (%), mean ± std over seeds; {MEAN_GROUPS} = mean of the group means (the VTAB-1k "
             f"convention), {MEAN_TASKS} = mean over all tasks; spread of means is over per-seed means. "
             "A mean needs every task and seed of its row; '—' marks what cannot be averaged."]
    notes.append(f"{PARAMS}: trainable parameters without the head, {PARAMS_HEAD}: with it, each the mean over "
                 "the row's tasks (heads and per-task settings differ between tasks).")
    notes += protocol_warnings(table)
    for row in table.rows:
        if row.missing:
            notes.append(f"* {row.label} incomplete: " + "; ".join(row.missing))
    if table.reference:
        for key, (delta, why) in reference_deltas(table).items():
            if delta is None and why:
                notes.append(f"n/c {'/'.join(key[:2])}@{key[2]}: not comparable with its reference row: {why}")
    for ref in table.reference:
        notes.append(f"[ref] {ref['ref_id']} {ref['label']}: {ref['source']} ({ref['table']}); "
                     f"protocol: {ref['protocol']}")
    return notes


def to_markdown(table: SuiteTable) -> str:
    header, rows = display_rows(table)
    lines = [f"**{table.suite.name}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in footnotes(table)]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(a, b)
    return text


def to_latex(table: SuiteTable) -> str:
    """A booktabs table: group headers as multicolumns, best per column bold, second underlined."""
    columns = table.columns()
    names = header_names(table)
    rank: Dict[str, Dict[int, int]] = {}
    for c, _ in columns:
        values = sorted({round(r.cells[c].mean, 1) for r in table.rows if c in r.cells}, reverse=True)
        rank[c] = {i: values.index(round(r.cells[c].mean, 1)) for i, r in enumerate(table.rows) if c in r.cells}
    spec = "lll" + "r" * (len(columns) + 1)
    lines = [r"\begin{tabular}{" + spec + "}", r"\toprule"]
    groups, start = [], 4
    for group in table.suite.groups:
        width = sum(1 for _, g in columns if g == group)
        groups.append((group, start, start + width - 1))
        start += width
    lines.append(" & & & " + " & ".join(rf"\multicolumn{{{e - s + 1}}}{{c}}{{{_latex_escape(g)}}}"
                                        for g, s, e in groups) + (" & " * (len(columns) - sum(e - s + 1 for _, s, e in groups) + 1)) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{s}-{e}}}" for _, s, e in groups))
    lines.append(" & ".join(["Backbone", "Method", "Config"] + [_latex_escape(n) for n in names] + [PARAMS]) + r" \\")
    lines.append(r"\midrule")
    for i, row in enumerate(table.rows):
        cells = []
        for c, _ in columns:
            text = _fmt(row.cells.get(c), std=False)
            if text != "—":
                if rank[c].get(i) == 0:
                    text = rf"\textbf{{{text}}}"
                elif rank[c].get(i) == 1:
                    text = rf"\underline{{{text}}}"
            else:
                text = "--"
            cells.append(text)
        method = _latex_escape(row.key[1]) + ("$^*$" if row.missing else "")
        params = "--" if row.params_m is None else f"{row.params_m:.4g}"
        lines.append(" & ".join([_latex_escape(row.key[0]), method, row.key[2]] + cells + [params]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def wide_frame(table: SuiteTable) -> pd.DataFrame:
    """The table as numbers: per column mean, std and n, one row per (backbone, method, config)."""
    records = []
    for row in table.rows:
        entry: Dict[str, Any] = dict(zip(ROW_KEYS, row.key))
        entry.update({"suite": table.suite.name, "params_m": row.params_m,
                      "params_with_head_m": row.params_with_head_m, "protocol": row.protocol, "seeds": len(row.seeds),
                      "complete": not row.missing, "missing": "; ".join(row.missing)})
        for c, _ in table.columns():
            cell = row.cells.get(c)
            entry[c] = None if cell is None else cell.mean
            entry[f"{c} std"] = None if cell is None else cell.std
            entry[f"{c} n"] = None if cell is None else cell.n
        records.append(entry)
    return pd.DataFrame(records)


def render_rich(table: SuiteTable):
    from rich.table import Table

    header, rows = display_rows(table)
    groups = {name: g for (c, g), name in zip(table.columns(), header_names(table))}
    rich_table = Table(title=f"{table.suite.name}: Top-1 (%)", caption="\n".join(footnotes(table)),
                       caption_justify="left")
    for name in header:
        group = groups.get(name, "")
        label = f"{name}\n[dim]{group}[/dim]" if group and not name.endswith("mean") else name
        rich_table.add_column(label, justify="left" if name in ("Backbone", "Method", "Config") else "right")
    for row in rows:
        rich_table.add_row(*row)
    return rich_table


def overall_column(suite: Suite) -> str:
    return MEAN_GROUPS if len(suite.groups) > 1 else MEAN_TASKS


def load_reference(suite: Suite) -> List[Dict[str, Any]]:
    """Published rows from suites/reference/<suite>.csv, with means computed from their per-task numbers."""
    from importlib import resources

    item = resources.files("alore_bench.suite_defs").joinpath("reference", f"{suite.name}.csv")
    if not item.is_file():
        return []
    from io import StringIO

    frame = pd.read_csv(StringIO(item.read_text(encoding="utf-8")))
    out = []
    for i, entry in frame.iterrows():
        cells = {t.name: Cell(float(entry[t.name]), None, 1) for t in suite.tasks if not pd.isna(entry.get(t.name))}
        for group in suite.groups:
            tasks = [t.name for t in suite.tasks if t.group == group]
            if all(t in cells for t in tasks) and len(suite.groups) > 1:
                cells[f"{group} mean"] = Cell(float(np.mean([cells[t].mean for t in tasks])), None, 1)
        if all(t.name in cells for t in suite.tasks):
            cells[MEAN_TASKS] = Cell(float(np.mean([cells[t.name].mean for t in suite.tasks])), None, 1)
            if len(suite.groups) > 1:
                cells[MEAN_GROUPS] = Cell(float(np.mean([cells[f"{g} mean"].mean for g in suite.groups])), None, 1)
        text = lambda column: None if pd.isna(entry.get(column)) or entry.get(column) == "" else str(entry[column])  # noqa: E731
        out.append({"backbone": entry["backbone"], "method": entry["method"], "label": entry["label"],
                    "params_m": float(entry["params_m"]), "source": entry["source"], "table": entry["table"],
                    "protocol": entry["protocol"], "cells": cells, "ref_id": f"R{i + 1}",
                    "protocol_preset": text("protocol_preset"), "config": json.loads(text("config") or "{}"),
                    "preset": text("preset"),
                    # The budget the official code trains where the published count uses another convention.
                    "code_params_m": float(entry["code_params_m"]) if text("code_params_m") else float(entry["params_m"])})
    return out


def comparability(row: Row, ref: Mapping[str, Any]) -> str:
    """Why `row` is not the configuration `ref` was trained with ('' when it is): its options, its
    per-task preset and its budget (to 0.01M) must match the reference's."""
    wrong = [f"{k}={row.method_config.get(k)!r} (published: {v!r})" for k, v in ref["config"].items()
             if row.method_config.get(k) != v]
    if wrong:
        return "options " + ", ".join(wrong)
    if (ref.get("preset") or None) != (row.preset or None):
        return f"preset {row.preset or 'none'} (published row: {ref.get('preset') or 'none'})"
    if row.params_m is None or round(row.params_m, 2) != round(ref["code_params_m"], 2):
        return f"budget {row.params_m if row.params_m is None else round(row.params_m, 3)}M " \
               f"(published row: {ref['code_params_m']}M)"
    return ""


def reference_deltas(table: SuiteTable) -> Dict[Tuple[str, str, str], Tuple[Optional[float], str]]:
    """(our overall mean minus the published one, '') for rows trained as their reference row was;
    (None, reason) for rows whose reference row used another configuration; (None, '') without one."""
    column = overall_column(table.suite)
    deltas = {}
    for row in table.rows:
        ref = next((r for r in table.reference if (r["backbone"], r["method"]) == row.key[:2]), None)
        if ref is None:
            deltas[row.key] = (None, "")
            continue
        why = comparability(row, ref)
        ours, theirs = row.cells.get(column), ref["cells"].get(column)
        if why:
            deltas[row.key] = (None, why)
        else:
            deltas[row.key] = (None if ours is None or theirs is None else ours.mean - theirs.mean, "")
    return deltas


def find_row(table: SuiteTable, spec: str) -> Row:
    """A row named `method`, `backbone/method` or either with `@config`; must be unique."""
    name, _, config = spec.partition("@")
    backbone, _, method = name.rpartition("/")
    matches = [r for r in table.rows if r.key[1] == method and (not backbone or r.key[0] == backbone)
               and (not config or r.key[2].startswith(config))]
    if len(matches) != 1:
        known = ", ".join(r.label for r in table.rows)
        what = "matches no row" if not matches else "matches several rows; add backbone/ or @config"
        raise UserError(f"--compare {spec!r} {what} of suite {table.suite.name} (rows: {known})")
    return matches[0]


def compare_rows(table: SuiteTable, frame: pd.DataFrame, spec: str) -> Dict[str, Any]:
    """Paired comparison of two rows: Wilcoxon signed-rank across tasks (effect size: matched-pairs
    rank-biserial correlation) and, per task, Welch's t-test across seeds where both rows have at
    least 2 seeds (effect size: Hedges' g)."""
    from scipy import stats

    left, sep, right = spec.partition(":")
    if not sep:
        raise UserError(f"--compare {spec!r}: expected A:B, e.g. --compare alore:lora")
    a, b = find_row(table, left), find_row(table, right)
    tasks = [t.name for t in table.suite.tasks if t.name in a.cells and t.name in b.cells]
    diffs = np.array([a.cells[t].mean - b.cells[t].mean for t in tasks])
    result: Dict[str, Any] = {"a": a.label, "b": b.label, "tasks": len(tasks),
                              "mean_difference": float(diffs.mean()) if len(diffs) else None}
    if len(diffs) and np.any(diffs != 0):
        test = stats.wilcoxon(diffs)
        nonzero = diffs[diffs != 0]
        ranks = stats.rankdata(np.abs(nonzero))
        result["wilcoxon"] = {"statistic": float(test.statistic), "p_value": float(test.pvalue),
                              "rank_biserial": float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())}
    else:
        result["wilcoxon"] = None
    per_task = []
    suite_frame = frame[(frame["suite"] == table.suite.name) & (frame["status"] == "ok")]
    for task in tasks:
        x = _seed_values(suite_frame, a.key, task)
        y = _seed_values(suite_frame, b.key, task)
        entry: Dict[str, Any] = {"task": task, "a_mean": float(np.mean(x)), "b_mean": float(np.mean(y)),
                                 "a_seeds": len(x), "b_seeds": len(y), "welch_t": None, "p_value": None, "hedges_g": None}
        if len(x) >= 2 and len(y) >= 2:
            test = stats.ttest_ind(x, y, equal_var=False)
            pooled = math.sqrt(((len(x) - 1) * np.var(x, ddof=1) + (len(y) - 1) * np.var(y, ddof=1)) / (len(x) + len(y) - 2))
            correction = 1 - 3 / (4 * (len(x) + len(y)) - 9)
            entry.update(welch_t=float(test.statistic), p_value=float(test.pvalue),
                         hedges_g=None if pooled == 0 else float((np.mean(x) - np.mean(y)) / pooled * correction))
        per_task.append(entry)
    result["per_task"] = per_task
    return result


def _seed_values(frame: pd.DataFrame, key: Tuple[str, str, str], task: str) -> List[float]:
    rows = frame[(frame["backbone"] == key[0]) & (frame["method"] == key[1]) & (frame["config"] == key[2])
                 & (frame["task"] == task)]
    return [float(v) for v in rows["top1"]]


def plot_accuracy_vs_params(tables: Sequence[SuiteTable], path) -> None:
    """Mean accuracy versus trainable parameters (log scale), one labelled point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6.4 * len(tables), 4.8), squeeze=False)
    for ax, table in zip(axes[0], tables):
        column = overall_column(table.suite)
        for row in table.rows:
            cell = row.cells.get(column)
            if cell is None or row.params_m is None:
                continue
            x = max(row.params_m, 1e-4)  # linear probing trains no backbone parameter; keep it on a log axis
            label = f"{row.key[1]} ({row.key[0]})" + (" [0 params, drawn at 1e-4]" if row.params_m < 1e-4 else "")
            ax.scatter([x], [cell.mean], s=36)
            ax.annotate(label, (x, cell.mean), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters without head (M, log scale)")
        ax.set_ylabel(f"{column}, Top-1 (%)")
        ax.set_title(f"{table.suite.name}: accuracy vs parameters")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
