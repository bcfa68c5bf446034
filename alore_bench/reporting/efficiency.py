"""The efficiency table PETL papers print, from the run records: trainable parameters, parameters
added at inference after merging, train time, steps and peak memory, per row (mean over its
records)."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

import pandas as pd

from .frame import ROW_KEYS
from .render import Names, fmt_params, snake
from .tables import SuiteTable

COLUMNS = ["Backbone", "Method", "Settings", "Params (M)", "+head (M)", "Extra at inference (M)", "Train (s/run)",
           "Steps/run", "Peak memory (GB)", "Memory measured as", "Runs"]


def _mean(series: pd.Series):
    values = pd.to_numeric(series, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def efficiency_rows(table: SuiteTable, frame: pd.DataFrame, names: Names) -> List[Dict[str, Any]]:
    mine = frame[(frame["suite"] == table.suite.name) & (frame["stage"] == table.stage) & (frame["status"] == "ok")
                 & frame["task"].isin([t.name for t in table.suite.tasks])]
    rows = []
    for row in table.rows:
        records = mine[(mine[ROW_KEYS[0]] == row.key[0]) & (mine[ROW_KEYS[1]] == row.key[1])
                       & (mine[ROW_KEYS[2]] == row.key[2])]
        # What the deployed model carries beyond the backbone and its head (0 once merged).
        extra = pd.to_numeric(records["inference_total"], errors="coerce") \
            - pd.to_numeric(records["backbone_total"], errors="coerce") - pd.to_numeric(records["head"], errors="coerce")
        peak = _mean(records["peak_bytes"])
        rows.append({"Backbone": names.backbone(row.key[0]), "Method": names.method(row.key[1]),
                     "Settings": table.settings_text(row), "Params (M)": fmt_params(row.params_m),
                     "+head (M)": fmt_params(row.params_with_head_m),
                     "Extra at inference (M)": fmt_params(_mean(extra) / 1e6 if _mean(extra) is not None else None),
                     "Train (s/run)": _fmt(_mean(records["train_seconds"]), ".1f"),
                     "Steps/run": _fmt(_mean(records["steps"]), ".0f"),
                     "Peak memory (GB)": _fmt(None if peak is None else peak / 2**30, ".2f"),
                     "Memory measured as": ", ".join(sorted(set(records["memory_kind"].dropna()))) or "—",
                     "Runs": str(len(records))})
    return rows


def _fmt(value, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def efficiency_frame(tables: Sequence[SuiteTable], frame: pd.DataFrame, names: Names) -> pd.DataFrame:
    rows = []
    for table in tables:
        rows += [{"Suite": table.suite.name, "Stage": table.stage, **r} for r in efficiency_rows(table, frame, names)]
    return pd.DataFrame(rows, columns=["Suite", "Stage"] + COLUMNS)


def efficiency_text(tables: Sequence[SuiteTable], frame: pd.DataFrame, names: Names, fmt: str) -> str:
    data = efficiency_frame(tables, frame, names)
    note = ("Params: trainable without / with the head, mean over tasks; Extra at inference: parameters the "
            "deployed model carries beyond backbone and head (0 for merged methods); Train: training seconds per "
            "run; Peak memory: CUDA max allocated, or the process's peak resident set on CPU (an upper bound).")
    if fmt == "md":
        lines = ["| " + " | ".join(data.columns) + " |", "|" + "|".join(["---"] * len(data.columns)) + "|"]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in data.itertuples(index=False)]
        return "\n".join(lines + ["", f"- {note}"]) + "\n"
    if fmt == "csv":
        return data.rename(columns=snake).to_csv(index=False)
    if fmt == "json":
        return data.rename(columns=snake).to_json(orient="records", indent=2) + "\n"
    if fmt == "tex":
        from .render import latex_escape

        escaped = data.map(latex_escape).rename(columns=latex_escape)
        return escaped.style.hide(axis="index").to_latex(hrules=True, column_format="l" * 3 + "r" * (len(data.columns) - 3),
                                                         environment="table*", position_float="centering",
                                                         caption="Efficiency. " + latex_escape(note))
    raise ValueError(fmt)
