"""`report --diagnostic best-of-test`: how much of a published row a test-selected number explains.

Final runs made with `--test-every N` keep the test top-1 of every N-th epoch in their record
(`diagnostics.test_curve`). This table sets each row's last-epoch top-1 (what every other table
reports) beside the best of that curve, per task: the best is chosen on test data, so it is titled
as not valid for claims. Nothing else reads the curve (no selection, tuning, table or delta:
tests/unit/reporting/test_diagnostics.py guards that)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from ..errors import UserError, param

DIAGNOSTICS = ("best-of-test",)
TITLE = "Best-of-test diagnostic: test-selected numbers, NOT valid for claims"
NOTE = ("last = the last epoch's test top-1 (what the tables report); best = the highest test top-1 over the "
        "evaluated epochs (selected on test data, as best-of-test reporting does); best - last is the gap that "
        "selection explains. Means over seeds.")


def curve_of(path: Any) -> List[Dict[str, Any]]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return []
    curve = (record.get("diagnostics") or {}).get("test_curve") if isinstance(record, dict) else None
    if not isinstance(curve, list):
        return []
    return [p for p in curve if isinstance(p, dict) and isinstance(p.get("top1"), (int, float))
            and isinstance(p.get("epoch"), int)]


def best_of_test_rows(frame) -> List[Dict[str, Any]]:
    """One row per (suite, backbone, method, config, task) of the final-stage records with a curve."""
    done = frame[(frame["stage"] == "final") & (frame["status"] == "ok")]
    per_seed = []
    for row in done.itertuples(index=False):
        curve = curve_of(row.path)
        if not curve:
            continue
        best = max(curve, key=lambda p: (p["top1"], -p["epoch"]))
        per_seed.append({"suite": row.suite, "backbone": row.backbone, "method": row.method, "config": row.config,
                         "task": row.task, "seed": row.seed, "last": float(row.top1), "best": float(best["top1"]),
                         "best_epoch": best["epoch"], "evaluated_epochs": len(curve)})
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for item in per_seed:
        groups.setdefault(tuple(item[k] for k in ("suite", "backbone", "method", "config", "task")), []).append(item)
    rows = []
    for (suite, backbone, method, config, task), items in groups.items():
        last = sum(i["last"] for i in items) / len(items)
        best = sum(i["best"] for i in items) / len(items)
        rows.append({"suite": suite, "backbone": backbone, "method": method, "config": config, "task": task,
                     "seeds": len(items), "last": last, "best": best, "best_minus_last": best - last,
                     "best_epochs": sorted(i["best_epoch"] for i in items),
                     "evaluated_epochs": max(i["evaluated_epochs"] for i in items)})
    return sorted(rows, key=lambda r: (r["suite"], r["backbone"], r["method"], r["config"], r["task"]))


def best_of_test_text(frame, fmt: str) -> str:
    rows = best_of_test_rows(frame)
    if not rows:
        raise UserError(f"{param('diagnostic', 'best-of-test')}: no final record has a test curve; run with "
                        f"{param('test_every', 1)} first (it records one, off by default)")
    if fmt == "json":
        return json.dumps({"title": TITLE, "note": NOTE, "rows": rows}, indent=2) + "\n"
    if fmt == "csv":
        import pandas as pd

        return pd.DataFrame(rows).to_csv(index=False)
    lines = [f"### {TITLE}", "", "| Suite | Backbone | Method | Config | Task | Seeds | Last epoch | Best of test "
             "| Best - last | Best epochs |", "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['suite']} | {r['backbone']} | {r['method']} | {r['config']} | {r['task']} | {r['seeds']} "
                     f"| {r['last']:.1f} | {r['best']:.1f} | {r['best_minus_last']:+.1f} "
                     f"| {', '.join(map(str, r['best_epochs']))} of {r['evaluated_epochs']} evaluated |")
    return "\n".join(lines + ["", f"- {NOTE}", ""])
