"""Records as a long frame (one row per record) with every setting that can make two rows differ,
and `--filter` on any of them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import pandas as pd

from ..errors import UserError, param, unknown_name_error
from ..runs.record import data_key

# What makes a row: the configuration hash of its records (the identity runs are filed under).
ROW_KEYS = ["backbone", "method", "config"]
# Settings shown when they differ between the rows of a table (method options come as opt.<name>).
SETTINGS = ["stage", "lr", "weight_decay", "epochs", "batch_size", "hparams", "protocol", "normalisation",
            "data_source", "data", "precision", "weights", "preset", "variant"]
BASE_COLUMNS = ["suite", "task", "group", "backbone", "method", "config", "seed", "status", "top1",
                "trainable_without_head", "trainable", "method_config", "error", "path", "train_seconds", "steps",
                "peak_bytes", "memory_kind", "inference_total", "backbone_total", "head", "point",
                # What a published row's delta must share with ours (reference.comparability).
                "release", "mean_std", "selection"]


def _precision(device: Any) -> Any:
    """Records from before precision was recorded: CUDA ran bf16 autocast, CPU fp32."""
    return {"cuda": "bf16-autocast", "cpu": "fp32"}.get(device)


def _weights(protocol: Mapping[str, Any]) -> Any:
    weights = protocol.get("weights") or {}
    if not weights:
        return None
    location = weights.get("location")
    return Path(location).name if location else weights.get("kind")


def _release(backbone: Any, protocol: Mapping[str, Any]) -> Any:
    """The weight release a record trained from: recorded, or (records from before releases were
    recorded) known by the published file's name."""
    weights = protocol.get("weights") or {}
    if weights.get("release"):
        return weights["release"]
    location = weights.get("location")
    if not location or not isinstance(backbone, str):
        return None
    from ..backbones import BACKBONES

    spec = BACKBONES.get(backbone) if backbone in BACKBONES else None
    name = Path(location).name
    return next((r.name for r in spec.all_releases() if name in (r.file, r.tag)), None) if spec else None


def _mean_std(protocol: Mapping[str, Any]) -> Any:
    """The normalisation by its values: imagenet, half (0.5 / 0.5), other; None when unrecorded."""
    norm = protocol.get("normalisation")
    if not isinstance(norm, Mapping) or "mean" not in norm:
        return None
    mean = [round(float(v), 3) for v in norm["mean"]]
    return {(0.485, 0.456, 0.406): "imagenet", (0.5, 0.5, 0.5): "half"}.get(tuple(mean), "other")


def record_row(r: Mapping[str, Any]) -> Dict[str, Any]:
    config = r.get("config") or {}
    train = config.get("train") or {}
    protocol = r.get("protocol") or {}
    metrics = r.get("metrics") or {}
    params = r.get("params") or {}
    timing = r.get("timing") or {}
    memory = r.get("memory") or {}
    row = {
        "suite": r.get("suite"), "task": r.get("task"), "group": r.get("group"), "backbone": r.get("backbone"),
        "method": r.get("method"), "config": r.get("config_hash"), "seed": r.get("seed"), "status": r.get("status"),
        "top1": metrics.get("top1"), "trainable_without_head": params.get("trainable_without_head"),
        "trainable": params.get("trainable"), "head": params.get("head"),
        "inference_total": params.get("inference_total"), "backbone_total": params.get("backbone_total"),
        "method_config": json.dumps(config.get("method") or {}, sort_keys=True),
        "error": r.get("error"), "path": r.get("_path"),
        "train_seconds": timing.get("train_seconds"), "steps": timing.get("steps"),
        "peak_bytes": memory.get("peak_bytes"), "memory_kind": memory.get("kind"),
        # Records from before stages existed were final runs.
        "stage": train.get("stage") or "final", "lr": train.get("lr"), "weight_decay": train.get("weight_decay"),
        "epochs": train.get("epochs"), "batch_size": train.get("batch_size"),
        "hparams": (config.get("hparams") or {}).get("source"),
        # The grid point a tuned final run took (selected on the tuning stage), as `key=value` text.
        "point": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in sorted(((config.get("hparams") or {}).get("point") or {}).items())) or None,
        "protocol": (protocol.get("preset") or {}).get("name"),
        "normalisation": (protocol.get("normalisation") or {}).get("name")
        if isinstance(protocol.get("normalisation"), dict) else protocol.get("normalisation"),
        "data_source": (protocol.get("data_source") or {}).get("kind"),
        # Which prepared data (checksums) and which arithmetic made the number.
        "data": data_key(protocol["data_fingerprint"]) if protocol.get("data_fingerprint") else None,
        "precision": protocol.get("precision") or _precision((r.get("env") or {}).get("device")),
        "weights": _weights(protocol),
        "preset": (config.get("preset") or {}).get("name"),
        "variant": r.get("variant"),
        "release": _release(r.get("backbone"), protocol), "mean_std": _mean_std(protocol),
        # alore-bench has always evaluated the last epoch (records before the field was written too).
        "selection": protocol.get("selection") or "last_epoch",
    }
    for key, value in (config.get("method") or {}).items():
        row[f"opt.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return row


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Long form: one row per record, its settings as columns (method options as opt.<name>)."""
    rows = [record_row(r) for r in records]
    options = sorted({k for row in rows for k in row if k.startswith("opt.")})
    return pd.DataFrame(rows, columns=BASE_COLUMNS + SETTINGS + options)


def filter_keys(frame: pd.DataFrame) -> List[str]:
    return ["backbone", "method", "suite", "task", "seed", "config"] + SETTINGS + \
        [c for c in frame.columns if c.startswith("opt.")]


def _matches(value: Any, wanted: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return wanted in ("none", "")
    try:  # numbers compare as numbers: lr=1e-3 matches 0.001
        return math.isclose(float(value), float(wanted), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(value).lower() == wanted.lower()


def parse_filters(items: Sequence[str], frame: pd.DataFrame) -> Dict[str, List[str]]:
    """`key=value[,value]` (repeatable) on any setting, `opt.<option>`, `config=<hash prefix>`."""
    filters: Dict[str, List[str]] = {}
    keys = filter_keys(frame)
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UserError(f"{param('filters', item)}: expected key=value[,value], e.g. stage=tune or "
                            "opt.experts=8")
        if key not in keys and not key.startswith("opt."):
            raise unknown_name_error("filter key", key, keys, param("filters"))
        filters.setdefault(key, []).extend(v.strip() for v in values.split(",") if v.strip())
    return filters


def apply_filters(frame: pd.DataFrame, filters: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    for key, values in filters.items():
        if key not in frame.columns:  # an option no shown record has
            return frame.iloc[0:0]
        if key == "config":
            mask = frame[key].astype(str).map(lambda v: any(v.startswith(p) for p in values))
        else:
            mask = frame[key].map(lambda v: any(_matches(v, w) for w in values))
        frame = frame[mask.astype(bool)]
    return frame
