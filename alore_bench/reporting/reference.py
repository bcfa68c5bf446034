"""Published rows (suites/reference/<suite>.csv) beside ours, and when a delta is honest."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import pandas as pd

from ..data.suites import Suite
from .tables import MEAN_GROUPS, MEAN_TASKS, Cell, Row, SuiteTable, overall_column


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
                    "preset": text("preset"), "cite": text("cite"),
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
