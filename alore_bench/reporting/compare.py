"""Paired comparison of two rows: Wilcoxon across tasks, Welch per task across seeds."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import numpy as np
import pandas as pd

from ..errors import UserError, param
from .tables import Row, SuiteTable


def find_row(table: SuiteTable, spec: str) -> Row:
    """A row named `method`, `backbone/method` or either with `@config`; must be unique."""
    name, _, config = spec.partition("@")
    backbone, _, method = name.rpartition("/")
    matches = [r for r in table.rows if r.key[1] == method and (not backbone or r.key[0] == backbone)
               and (not config or r.key[2].startswith(config))]
    if len(matches) != 1:
        known = ", ".join(r.label for r in table.rows)
        what = "matches no row" if not matches else "matches several rows; add backbone/ or @config"
        raise UserError(f"{param('compare', spec)} {what} of suite {table.suite.name} (rows: {known})")
    return matches[0]


def compare_rows(table: SuiteTable, frame: pd.DataFrame, spec: str) -> Dict[str, Any]:
    """Paired comparison of two rows: Wilcoxon signed-rank across tasks (effect size: matched-pairs
    rank-biserial correlation) and, per task, Welch's t-test across seeds where both rows have at
    least 2 seeds (effect size: Hedges' g)."""
    from scipy import stats

    left, sep, right = spec.partition(":")
    if not sep:
        raise UserError(f"{param('compare', spec)}: expected A:B, e.g. {param('compare', 'alore:lora')}")
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


def compare_text(result: Dict[str, Any], fmt: str) -> str:
    """The comparison as written to --out: what the terminal shows, in any format."""
    import json

    summary = {"a": result["a"], "b": result["b"], "tasks": result["tasks"],
               "mean_difference": _round(result["mean_difference"], 3)}
    wilcoxon = result.get("wilcoxon") or {}
    summary.update({"wilcoxon_statistic": _round(wilcoxon.get("statistic"), 3),
                    "wilcoxon_p_value": _round(wilcoxon.get("p_value"), 4),
                    "rank_biserial": _round(wilcoxon.get("rank_biserial"), 3)})
    per_task = pd.DataFrame([{k: _round(v, 4) if isinstance(v, float) else v for k, v in e.items()}
                             for e in result["per_task"]],
                            columns=["task", "a_mean", "b_mean", "a_seeds", "b_seeds", "welch_t", "p_value", "hedges_g"])
    if fmt == "json":
        return json.dumps({**summary, "per_task": per_task.to_dict("records")}, indent=2) + "\n"
    if fmt == "csv":
        return per_task.assign(a=result["a"], b=result["b"]).to_csv(index=False)
    head = (f"{result['a']} vs {result['b']}: mean difference {summary['mean_difference']} points over "
            f"{result['tasks']} tasks; Wilcoxon signed-rank p = {summary['wilcoxon_p_value']}, rank-biserial "
            f"r = {summary['rank_biserial']}. Per task: Welch's t-test over seeds, Hedges' g.")
    shown = per_task.astype(object).where(per_task.notna(), "—")
    if fmt == "md":
        lines = [head, "", "| " + " | ".join(shown.columns) + " |", "|" + "|".join(["---"] * len(shown.columns)) + "|"]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join(lines) + "\n"
    if fmt == "tex":
        from .render import latex_escape

        escaped = shown.map(latex_escape).rename(columns=latex_escape)
        return escaped.style.hide(axis="index").to_latex(hrules=True, column_format="l" + "r" * 7,
                                                         environment="table", position_float="centering",
                                                         caption=latex_escape(head))
    raise ValueError(fmt)


def _round(value, digits: int):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)
