"""What a study consists of and how far it is: runs per (suite, backbone, variant, stage) from its
expansion, and done / running / failed / pending counted from the records its variants wrote."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..runs.spec import RunSpec
from .expand import STAGES


def study_counts(specs: Mapping[str, Sequence[RunSpec]]) -> List[Dict[str, Any]]:
    """Runs and grid points per (suite, backbone, variant, stage), for `study plan` and `study status`."""
    rows: Dict[Tuple[str, str, str, str], Dict[str, Any]] = {}
    for stage in STAGES:
        for spec in specs[stage]:
            key = (spec.suite, spec.backbone, spec.variant, stage)
            row = rows.setdefault(key, {"suite": spec.suite, "backbone": spec.backbone, "variant": spec.variant,
                                        "stage": stage, "runs": 0, "grid points": set()})
            row["runs"] += len(spec.tasks) * len(spec.seeds)
            if spec.grid_index is not None:
                row["grid points"].add(spec.grid_index)
    for row in rows.values():
        row["grid points"] = len(row["grid points"]) or None
    return list(rows.values())


def study_progress(specs: Mapping[str, Sequence[RunSpec]], records: List[Mapping[str, Any]],
                   running: Sequence[Mapping[str, Any]] = ()) -> List[Dict[str, Any]]:
    """Per suite, backbone, variant and stage: runs expected, done, running (claims held now),
    failed, pending and train time spent, counted from the records the study's variants wrote
    (`variant` field)."""
    keys = ("suite", "backbone", "variant", "stage")
    rows = []
    for row in study_counts(specs):
        mine = [r for r in records if r.get("variant") == row["variant"] and r.get("backbone") == row["backbone"]
                and r.get("suite") == row["suite"]
                and ((r.get("config") or {}).get("train") or {}).get("stage") == row["stage"]]
        done = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine if r.get("status") == "ok"}
        failed = {(r["task"], r["seed"], (r.get("tuning") or {}).get("index")) for r in mine
                  if r.get("status") != "ok"} - done
        seconds = sum(((r.get("timing") or {}).get("train_seconds") or 0.0) for r in mine)
        now = sum(1 for claim in running
                  if {k: (claim.get("job") or {}).get(k) for k in keys} == {k: row[k] for k in keys})
        rows.append({**row, "done": len(done), "running": now, "failed": len(failed),
                     "pending": max(row["runs"] - len(done) - len(failed) - now, 0), "train_seconds": seconds})
    return rows
