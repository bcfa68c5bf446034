"""Result records: one JSON file per (suite, task, backbone, method, config, seed): the schema,
the identity that names a configuration, where a record lives, and strict-JSON reads and writes.

Layout: <results>/<suite>/<backbone>/<method>-<config hash>/<task>/seed<seed>.json. The hash
covers everything that changes numbers except task and seed, so a changed config always lands
in a new folder and never overwrites or reuses an old record.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from dataclasses import asdict, fields
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ..config import TrainConfig, stable_hash
from ..io import atomic_write_text

RECORD_SCHEMA = "alore-bench/record/1"


# Recipe fields added after records existed, with the behaviour those records had: at these values
# they are left out of the identity, so an upgrade keeps the hashes (and records) of earlier runs.
LATER_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.metadata.get("added_later")}


def config_identity(suite: str, backbone: str, method: str, method_config: Mapping[str, Any],
                    train_config: Mapping[str, Any], weights: Mapping[str, Any],
                    preset: Optional[Mapping[str, Any]] = None,
                    compute: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """What defines 'the same run' apart from task and seed: also the device type and precision
    (`compute`), since bf16 on CUDA and fp32 on CPU give different numbers."""
    weight_id = {"kind": weights["kind"], "sha256": weights.get("sha256") or weights["location"]}
    train = {k: v for k, v in train_config.items() if k not in LATER_TRAIN_DEFAULTS or v != LATER_TRAIN_DEFAULTS[k]}
    identity = {"suite": suite, "backbone": backbone, "method": method, "method_config": dict(method_config),
                "train": train, "weights": weight_id}
    if compute is not None:
        identity["compute"] = dict(compute)
    if preset is not None:  # absent otherwise, so the hashes of earlier records stay valid
        identity["preset"] = {"name": preset["name"], "sha": preset["sha"]}
    return identity


def record_path(results_dir: Path, identity: Mapping[str, Any], task: str, seed: int) -> Path:
    folder = f"{identity['method']}-{stable_hash(identity)}"
    return results_dir / identity["suite"] / identity["backbone"] / folder / task / f"seed{seed}.json"


def strict_json(value: Any, where: str = "", found: Optional[List[str]] = None) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN or Infinity); the
    places replaced are appended to `found`."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(where or "(value)")
        return None
    if isinstance(value, Mapping):
        return {k: strict_json(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Strict JSON: non-finite numbers are written as null and listed under `non_finite`."""
    found: List[str] = []
    clean = strict_json(record, found=found)
    if found:
        clean["non_finite"] = found
    atomic_write_text(path, json.dumps(clean, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_record(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def data_fingerprint(manifest: Mapping[str, Any], splits: Tuple[str, ...]) -> Dict[str, Any]:
    return {s: manifest["splits"][s]["images_sha256"][:16] + ":" + manifest["splits"][s]["labels_sha256"][:16]
            for s in splits}


def data_key(fingerprint: Mapping[str, Any]) -> str:
    """A short name for the prepared data a record was made from."""
    return stable_hash(dict(fingerprint), length=8)


def seeds_from_other_data(path: Path, fingerprint: Mapping[str, Any]) -> List[int]:
    """Seeds of the same configuration and task (the record's siblings) that were made from other
    prepared data than `fingerprint`: a new seed must not join them in one row."""
    other = []
    for sibling in sorted(path.parent.glob("seed*.json")):
        if sibling == path:
            continue
        try:
            record = read_record(sibling)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("status") == "ok" \
                and (record.get("protocol") or {}).get("data_fingerprint") not in (None, dict(fingerprint)):
            other.append(record.get("seed"))
    return other


def iter_record_files(results_dir: Path) -> Iterator[Path]:
    if results_dir.is_dir():
        yield from sorted(results_dir.rglob("seed*.json"))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def load_records(results_dir: Path) -> Tuple[List[Dict[str, Any]], List[Tuple[Path, str]]]:
    """All readable records under `results_dir`, plus (path, reason) for files that are not
    (unreadable, another schema, fields of the wrong type, or not where their fields put them)."""
    from .record_check import record_problem

    records, bad = [], []
    for path in iter_record_files(results_dir):
        try:
            record = read_record(path)
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            bad.append((path, f"unreadable JSON ({str(exc).splitlines()[0][:120]})"))
            continue
        if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
            bad.append((path, f"not an {RECORD_SCHEMA} record"))
            continue
        problem = record_problem(record, path)
        if problem is not None:
            bad.append((path, problem))
            continue
        record["_path"] = str(path)
        records.append(record)
    return records, bad


def previous_outcome(path: Path, fingerprint: Mapping[str, Any]) -> Optional[str]:
    """'same' when an ok record of identical config and data exists, 'other-data' when the data
    differ, None when there is nothing to reuse (missing, failed or unreadable)."""
    if not path.is_file():
        return None
    try:
        record = read_record(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status") != "ok":
        return None
    return "same" if record.get("protocol", {}).get("data_fingerprint") == dict(fingerprint) else "other-data"


def spec_identity(spec, weights: Mapping[str, Any], compute: Mapping[str, Any]) -> Dict[str, Any]:
    """The configuration identity of a run spec (the run-level method config and recipe, before
    any per-task layer), with its resolved `weights` and `compute` (device type, precision)."""
    if spec.train.protocol == "auto":
        raise ValueError("resolve protocol auto (runs.spec.resolve_protocol) before naming a configuration")
    preset = spec.preset_spec
    return config_identity(spec.suite, spec.backbone, spec.method, asdict(spec.method_config), asdict(spec.train),
                           weights, preset=preset.describe() if preset else None, compute=compute)
