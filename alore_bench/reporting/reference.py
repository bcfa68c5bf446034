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
                    # What the row was trained with beyond its options: a delta needs all of them shared.
                    "normalisation": text("normalisation"), "weights": text("weights"), "selection": text("selection"),
                    "selection_source": text("selection_source"),
                    # The budget the official code trains where the published count uses another convention.
                    "code_params_m": float(entry["code_params_m"]) if text("code_params_m") else float(entry["params_m"])})
    return out


def _row_mean_std(row: Row) -> Optional[str]:
    """The row's normalisation by its values; for records that did not keep them, the protocol's."""
    if row.mean_std is not None:
        return row.mean_std
    from ..protocols import PROTOCOLS

    if row.protocol and row.protocol in PROTOCOLS.names() and PROTOCOLS.get(row.protocol).normalisation == "imagenet":
        return "imagenet"
    return None


def comparability(row: Row, ref: Mapping[str, Any]) -> str:
    """Why `row` is not the configuration `ref` was trained with ('' when it is): its options, its
    per-task preset, its budget (to 0.01M), and the protocol, normalisation, weight release and
    model selection the published row names must all match; every difference is given."""
    reasons = []
    wrong = [f"{k}={row.method_config.get(k)!r} (published: {v!r})" for k, v in ref["config"].items()
             if row.method_config.get(k) != v]
    if wrong:
        reasons.append("options " + ", ".join(wrong))
    if (ref.get("preset") or None) != (row.preset or None):
        reasons.append(f"preset {row.preset or 'none'} (published row: {ref.get('preset') or 'none'})")
    if row.params_m is None or round(row.params_m, 2) != round(ref["code_params_m"], 2):
        reasons.append(f"budget {row.params_m if row.params_m is None else round(row.params_m, 3)}M "
                       f"(published row: {ref['code_params_m']}M)")
    for what, ours, theirs in (("protocol", row.protocol, ref.get("protocol_preset")),
                               ("normalisation", _row_mean_std(row), ref.get("normalisation")),
                               ("weights", row.release, ref.get("weights")),
                               ("selection", row.selection, ref.get("selection"))):
        if theirs and ours != theirs:
            reasons.append(f"{what} {_words(ours)} (published row: {_words(theirs)})")
    return "; ".join(reasons)


def _words(value: Optional[str]) -> str:
    return "unrecorded" if value is None else value.replace("_", " ")


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
