"""Tables as text: the terminal (rich), Markdown, paper-ready LaTeX (pandas' Styler), CSV in long
form (one row per cell) and one JSON document, for any number of suites and stages. Every written
table carries its footnotes: what the symbols mean, incomplete rows and the runs that failed."""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

from .latex import DEFAULT_WIDTH, FITS, latex_escape, to_latex  # noqa: F401 (FITS, latex_escape: re-exported)
from .reference import reference_deltas
from .tables import MEAN_GROUPS, MEAN_TASKS, STAGE_LABEL, Cell, SuiteTable

PARAMS = "Params (M)"
PARAMS_HEAD = "+head (M)"
PROTOCOL = "Protocol"
SUITE_NAMES = {"vtab1k": "VTAB-1k", "fgvc": "FGVC", "demo": "demo"}


class Names:
    """Display names of methods and backbones: the registries' (`display`), overridden by the user
    (`--name lora="LoRA~\\cite{hu2022lora}"`: taken as LaTeX in .tex, as written elsewhere). The
    registries' names come from the code cache (`registry_names`), so a report imports no torch."""

    def __init__(self, overrides: Optional[Mapping[str, str]] = None):
        self.overrides = dict(overrides or {})

    def method(self, name: str) -> str:
        return self.overrides.get(name) or self._registered("methods", name)

    def backbone(self, name: str) -> str:
        if name.startswith("timm:") and name not in self.overrides:
            return name[len("timm:"):]  # what backbones/timm_any.py displays, without building the model
        return self.overrides.get(name) or self._registered("backbones", name)

    @staticmethod
    def _registered(kind: str, name: str) -> str:
        cached = registry_names()[kind]
        if name in cached:
            return cached[name]
        # An entry registered in this process (a plugin, the API) is not in the cache: ask the registry
        # only when it is loaded already, so that an unknown name never costs a torch import.
        module = sys.modules.get(f"alore_bench.{kind}")
        registry = getattr(module, kind.upper(), None)
        return registry.get(name).display_name if registry is not None and name in registry else name


def registry_names() -> Dict[str, Dict[str, str]]:
    """{"methods": {name: display name}, "backbones": {...}}: built from the registries once per
    version of the code and of the plugins, read back from the code cache afterwards."""
    from ..code_cache import cached

    def build() -> Dict[str, Dict[str, str]]:
        from ..backbones import BACKBONES
        from ..methods import METHODS

        return {"methods": {name: METHODS.get(name).display_name for name in METHODS.names()},
                "backbones": {name: BACKBONES.get(name).display_name for name in BACKBONES.names()}}

    # Names of entries registered in this process come from the live registry (Names._registered), so
    # the key leaves them out: a report in a fresh process finds what this one cached.
    return cached("names", build, lambda value: isinstance(value, dict) and {"methods", "backbones"} <= set(value),
                  registered_here=False)


def fmt_cell(cell: Optional[Cell], std: bool = True, plus_minus: str = "±") -> str:
    if cell is None:
        return "—"
    text = f"{cell.mean:.1f}"
    if std and cell.std is not None:
        text += f" {plus_minus} {cell.std:.1f}"
    return text


def fmt_params(value: Optional[float]) -> str:
    """Millions as papers print them: 85.8, 0.15, 0.0042, 0.000064, 0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if value == 0:
        return "0"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.01:
        return f"{value:.2f}"
    return f"{value:.{1 - math.floor(math.log10(value))}f}"  # two significant digits, never 6.4e-05


def display_rows(table: SuiteTable, std: bool = True, names: Optional[Names] = None) -> Tuple[List[str], List[List[str]]]:
    names = names or Names()
    columns = table.columns()
    header = ["Backbone", "Method", "Settings"] + [table.column_label(c) for c, _ in columns] + \
        [PARAMS, PARAMS_HEAD, PROTOCOL, "Seeds", "Config"]
    deltas = reference_deltas(table) if table.reference else {}
    if table.reference:
        header.append("Δ vs ref")
    rows = []
    for row in table.rows:
        flag = " *" if row.missing else ""
        rows.append([names.backbone(row.key[0]), names.method(row.key[1]) + flag, table.settings_text(row)]
                    + [fmt_cell(row.cells.get(c), std) for c, _ in columns]
                    + [fmt_params(row.params_m), fmt_params(row.params_with_head_m), row.protocol or "—",
                       str(len(row.seeds)), row.key[2]])
        if table.reference:
            delta, why = deltas.get(row.key, (None, ""))
            rows[-1].append("n/c" if delta is None and why else "—" if delta is None else f"{delta:+.1f}")
    for ref in table.reference:
        rows.append([names.backbone(ref["backbone"]), f"{ref['label']} [ref]", "published"]
                    + [fmt_cell(ref["cells"].get(c), False) for c, _ in columns]
                    + [fmt_params(ref["params_m"]), "—", ref["protocol_preset"] or "—", "—", ref["ref_id"], ""])
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
    stage = STAGE_LABEL.get(table.stage, table.stage)
    # The group mean is a column only where the suite has groups to average (VTAB-1k, not FGVC).
    groups = (f"{MEAN_GROUPS} = mean of the group means (the VTAB-1k convention), "
              if len(table.suite.groups) > 1 else "")
    notes = [f"Top-1 (%) on the {stage} split, mean ± std over seeds; {groups}{MEAN_TASKS} = mean over all tasks; "
             "spread of means is over per-seed means. "
             "A mean needs every task and seed of its row; '—' marks what cannot be averaged."]
    if table.partial:
        notes.append(f"Partial: only {table.partial[0]} of the suite's {table.partial[1]} tasks are shown; "
                     "means are over those tasks and are not the suite's means.")
    notes.append(f"{PARAMS}: trainable parameters without the head, {PARAMS_HEAD}: with it, each the mean over "
                 "the row's tasks (heads and per-task settings differ between tasks).")
    if table.any_varying:
        notes.append("Settings: the settings that differ between rows (tuned = selected per task on the tuning "
                     "stage; mixed = differs between the row's records).")
    notes += protocol_warnings(table)
    for row in table.rows:
        if row.points:  # what `tuned` stands for, task by task
            notes.append(f"{row.label} selected on the tuning stage: "
                         + "; ".join(f"{task} {row.points[task]}" for task in table.suite.task_names
                                     if task in row.points))
    for row in table.rows:
        if row.missing:
            notes.append(f"* {row.label} incomplete: " + "; ".join(row.missing))
    for failure in table.failed:
        notes.append(f"failed run: {failure}")
    notes += [f"split: {note}" for note in table.splits]
    notes += [f"duplicate: {note}" for note in table.duplicates]
    if table.reference:
        for key, (delta, why) in reference_deltas(table).items():
            if delta is None and why:
                notes.append(f"n/c {'/'.join(key[:2])}@{key[2]}: not comparable with its reference row: {why}")
        for ref in table.reference:
            trained = "".join(f"; {what}: {ref[what].replace('_', ' ')}" for what in ("weights", "selection")
                              if ref.get(what))
            notes.append(f"[ref] {ref['ref_id']} {ref['label']}: {ref['source']} ({ref['table']}); "
                         f"protocol: {ref['protocol']}{trained}")
    return notes


def title(table: SuiteTable) -> str:
    return f"{SUITE_NAMES.get(table.suite.name, table.suite.name)}, {STAGE_LABEL.get(table.stage, table.stage)}"


def to_markdown(table: SuiteTable, std: bool = True, names: Optional[Names] = None, notes: bool = True) -> str:
    header, rows = display_rows(table, std, names)
    lines = [f"**{title(table)}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += [""] + [f"- {note}" for note in footnotes(table)] if notes else []
    return "\n".join(lines) + "\n"


# --- CSV (long) and JSON (one document) -------------------------------------------------------

def _round(value: Optional[float], digits: int) -> Optional[float]:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), digits)


def snake(name: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "_" for ch in name)
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def long_rows(tables: Sequence[SuiteTable], names: Optional[Names] = None) -> List[Dict[str, Any]]:
    """One row per cell (and per failed run and missing piece), for any number of suites."""
    names = names or Names()
    out = []
    for table in tables:
        base = {"suite": table.suite.name, "stage": table.stage,
                "tasks_shown": table.partial[0] if table.partial else len(table.suite.tasks),
                "tasks_in_suite": table.partial[1] if table.partial else len(table.suite.tasks)}
        for row in table.rows:
            shared = {**base, "backbone": row.key[0], "method": row.key[1], "method_display": names.method(row.key[1]),
                      "config": row.key[2], "settings": table.settings_text(row), "protocol": row.protocol,
                      "seeds": len(row.seeds), "complete": not row.missing}
            for column, group in table.columns():
                cell = row.cells.get(column)
                per_task = row.params_per_task.get(column, (row.params_m, row.params_with_head_m))
                out.append({**shared, "kind": "mean" if table.is_mean(column) else "task", "column": snake(column),
                            "group": group or None, "top1_mean": _round(cell.mean, 2) if cell else None,
                            "top1_std": _round(cell.std, 2) if cell else None, "n": cell.n if cell else 0,
                            "params_m": _round(per_task[0], 4), "params_with_head_m": _round(per_task[1], 4),
                            "note": None})
            for missing in row.missing:
                out.append({**shared, "kind": "missing", "column": snake(missing.split(":")[0]), "note": missing})
        for failure in table.failed:
            out.append({**base, "kind": "failed", "note": failure})
        for ref in table.reference:
            for column, group in table.columns():
                cell = ref["cells"].get(column)
                out.append({**base, "backbone": ref["backbone"], "method": ref["method"], "method_display": ref["label"],
                            "config": ref["ref_id"], "settings": "published", "kind": "reference",
                            "column": snake(column), "group": group or None,
                            "top1_mean": _round(cell.mean, 2) if cell else None, "params_m": _round(ref["params_m"], 4),
                            "note": ref["source"]})
    columns = ["suite", "stage", "kind", "backbone", "method", "method_display", "config", "settings", "protocol",
               "column", "group", "top1_mean", "top1_std", "n", "seeds", "complete", "params_m", "params_with_head_m",
               "tasks_shown", "tasks_in_suite", "note"]
    return [{c: row.get(c) for c in columns} for row in out]


def to_csv(tables: Sequence[SuiteTable], names: Optional[Names] = None) -> str:
    frame = pd.DataFrame(long_rows(tables, names))
    for column in ("n", "seeds", "tasks_shown", "tasks_in_suite"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # counts stay integers next to gaps
    return frame.to_csv(index=False)


def table_document(table: SuiteTable, names: Optional[Names] = None) -> Dict[str, Any]:
    names = names or Names()
    deltas = reference_deltas(table) if table.reference else {}

    def cells(mapping: Mapping[str, Cell]) -> Dict[str, Any]:
        return {snake(c): {"mean": _round(mapping[c].mean, 2), "std": _round(mapping[c].std, 2), "n": mapping[c].n}
                for c, _ in table.columns() if c in mapping}

    rows = []
    for row in table.rows:
        delta = deltas.get(row.key, (None, ""))
        rows.append({"backbone": row.key[0], "method": row.key[1], "method_display": names.method(row.key[1]),
                     "config": row.key[2], "settings": {k: row.settings.get(k) for k in table.varying_for(row)},
                     "params_m": _round(row.params_m, 4), "params_with_head_m": _round(row.params_with_head_m, 4),
                     "params_per_task_m": {t: _round(v[0], 4) for t, v in row.params_per_task.items()},
                     "protocol": row.protocol, "seeds": row.seeds, "complete": not row.missing,
                     "missing": row.missing, "cells": cells(row.cells),
                     **({"delta_vs_reference": _round(delta[0], 2), "not_comparable": delta[1] or None}
                        if table.reference else {})})
    return {"suite": table.suite.name, "stage": table.stage,
            "tasks": [t.name for t in table.suite.tasks], "partial": bool(table.partial),
            "columns": [snake(c) for c, _ in table.columns()],
            "varying_settings": table.varying + sorted({k for keys in table.varying_by_method.values() for k in keys}),
            "rows": rows,
            "reference": [{"id": r["ref_id"], "backbone": r["backbone"], "method": r["method"], "label": r["label"],
                           "params_m": r["params_m"], "source": r["source"], "cells": cells(r["cells"])}
                          for r in table.reference],
            "failed": table.failed, "notes": footnotes(table)}


def to_json(tables: Sequence[SuiteTable], names: Optional[Names] = None) -> str:
    """One document: {suite: {stage: table}}."""
    document: Dict[str, Dict[str, Any]] = {}
    for table in tables:
        document.setdefault(table.suite.name, {})[table.stage] = table_document(table, names)
    return json.dumps(document, indent=2) + "\n"


def tables_text(tables: Sequence[SuiteTable], fmt: str, std: bool = True, names: Optional[Names] = None,
                fit: str = "auto", width: str = DEFAULT_WIDTH, notes: bool = True, bib: Optional[set] = None,
                warn=None) -> str:
    """All tables as one well-formed document of the format (LaTeX: `fit` and `width` lay it out,
    `bib` holds the .bib keys published rows may cite; `notes` off drops the footnotes)."""
    if fmt == "md":
        return "\n".join(to_markdown(t, std, names, notes) for t in tables)
    if fmt == "tex":
        return "\n".join(to_latex(t, std, names, fit, width, notes, bib, warn) for t in tables)
    if fmt == "csv":
        return to_csv(tables, names)
    if fmt == "json":
        return to_json(tables, names)
    raise ValueError(fmt)
