"""Is a record file what it says it is? The fields a report reads have their types, and the file
sits where its own fields would put it (`<suite>/<backbone>/<method>-<config_hash>/<task>/seed<N>.json`):
a hand-edited hash, a record copied into another configuration's folder or a field of the wrong
type is reported with the file and the field, and the record is left out, never half-read."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional

NAMES = ("suite", "task", "backbone", "method", "config_hash")
MAPPINGS = ("config", "protocol", "params", "timing", "memory", "env")
COUNTS = ("trainable_without_head", "trainable", "head", "inference_total", "backbone_total")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record: Mapping[str, Any], path: Path) -> Optional[str]:
    """Why `record` (read from `path`) cannot be used, or None."""
    for name in NAMES:
        if not isinstance(record.get(name), str) or not record[name]:
            return f"field {name!r} is {record.get(name)!r}, not a name"
    seed = record.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"field 'seed' is {seed!r}, not an integer"
    if record.get("status") not in ("ok", "failed", "running"):
        return f"field 'status' is {record.get('status')!r}, not ok or failed"
    for name in MAPPINGS:
        if record.get(name) is not None and not isinstance(record[name], dict):
            return f"field {name!r} is a {type(record[name]).__name__}, not an object"
    config = record.get("config") or {}
    for name in ("method", "train", "hparams"):
        if config.get(name) is not None and not isinstance(config[name], dict):
            return f"field 'config.{name}' is a {type(config[name]).__name__}, not an object"
    fingerprint = (record.get("protocol") or {}).get("data_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, dict)
                                        and all(isinstance(v, str) for v in fingerprint.values())):
        return "field 'protocol.data_fingerprint' is not an object of checksums"
    for name in COUNTS:
        value = (record.get("params") or {}).get(name)
        if value is not None and not (_number(value) and value >= 0):
            return f"field 'params.{name}' is {value!r}, not a count"
    if record["status"] == "ok":
        top1 = (record.get("metrics") or {}).get("top1") if isinstance(record.get("metrics"), dict) else "?"
        if top1 is not None and not (_number(top1) and (not math.isfinite(top1) or 0 <= top1 <= 100)):
            return f"field 'metrics.top1' is {top1!r}, not a top-1 in percent"
    expected = (record["suite"], record["backbone"], f"{record['method']}-{record['config_hash']}", record["task"],
                f"seed{seed}.json")
    found = tuple(path.parts[-5:])
    # A copy beside the record (`seed1 (copy).json`) is the report's to count once, not a forgery.
    copy = len(found) == 5 and re.fullmatch(rf"seed{seed}(\D.*)?\.json", found[-1]) is not None
    if found[:-1] != expected[:-1] or not copy:
        return (f"its fields put it at {'/'.join(expected)}, not {'/'.join(found)} (a copied file or an edited "
                "config_hash: rerun it, or move it back)")
    return None
