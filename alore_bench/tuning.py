"""Hyper-parameter grids on the tuning stage (VTAB-1k: train800 -> val200) and the selection of a
point per task from their records. Nothing here reads a test split: selection uses only the
validation top-1 stored in tuning-stage records.

A grid maps keys to value lists. Keys are the recipe's `lr` and `weight_decay` or options of the
method's config (e.g. ALoRE's `scale`). Every tuning record carries
`tuning = {base, grid, point, index}`: `base` hashes the configuration without the grid's keys
(and without the stage), so `run` can find the tuning records of its own configuration.

Selection per task: the grid point with the highest mean validation top-1 over the tuning seeds;
ties go to the smaller lr, then to the earlier point in the grid's order.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .config import TrainConfig, config_from_dict, stable_hash
from .errors import UserError, param, unknown_name_error

TRAIN_KEYS = ("lr", "weight_decay")


@dataclass(frozen=True)
class Grid:
    """Ordered axes: ((key, (value, ...)), ...); points in the order of itertools.product."""

    axes: Tuple[Tuple[str, Tuple[Any, ...]], ...]

    @property
    def keys(self) -> Tuple[str, ...]:
        return tuple(key for key, _values in self.axes)

    def points(self) -> List[Dict[str, Any]]:
        return [dict(zip(self.keys, values)) for values in itertools.product(*(v for _k, v in self.axes))]

    def describe(self) -> Dict[str, List[Any]]:
        return {key: list(values) for key, values in self.axes}

    def __bool__(self) -> bool:
        return bool(self.axes)


def split_point(point: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(recipe overrides, method option overrides) of a grid point."""
    train = {k: v for k, v in point.items() if k in TRAIN_KEYS}
    return train, {k: v for k, v in point.items() if k not in TRAIN_KEYS}


def make_grid(raw: Mapping[str, Sequence[Any]], method_spec, where: str) -> Grid:
    """A validated grid: known keys, non-empty value lists, every value valid for its config."""
    method_fields = [f.name for f in dataclasses.fields(method_spec.config_cls)]
    axes = []
    for key, values in raw.items():
        if key not in TRAIN_KEYS and key not in method_fields:
            raise unknown_name_error(f"grid key (recipe {' / '.join(TRAIN_KEYS)} or a {method_spec.name} option)",
                                     key, list(TRAIN_KEYS) + method_fields, where)
        values = list(values)
        if not values:
            raise UserError(f"{where} {key}: give at least one value")
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"{where} {key}: values repeat ({', '.join(map(str, values))})")
        coerced = []
        for value in values:
            if key in TRAIN_KEYS:
                coerced.append(getattr(config_from_dict(TrainConfig, {key: value}, where), key))
            else:
                config = method_spec.config_from_dict({**dataclasses.asdict(method_spec.default_config()), key: value})
                coerced.append(getattr(config, key))
        axes.append((key, tuple(coerced)))
    return Grid(tuple(axes))


def parse_grid_options(items: Iterable[str], method_spec) -> Grid:
    """`--grid key=v1,v2` (repeatable) into a validated Grid."""
    raw: Dict[str, List[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UserError(f"{param('grid', item)}: expected key=value[,value...], e.g. lr=1e-3,1e-2")
        if key in raw:
            raise UserError(f"{param('grid', key)} is given twice: list all its values in one {param('grid', key + '=...')}")
        raw[key] = [v.strip() for v in values.split(",") if v.strip()]
    return make_grid(raw, method_spec, param("grid"))


def base_identity(identity: Mapping[str, Any], keys: Iterable[str]) -> str:
    """The hash of a configuration identity without the grid's keys and without the stage."""
    base = copy.deepcopy(dict(identity))
    keys = set(keys)
    base["train"] = {k: v for k, v in base["train"].items() if k not in keys and k != "stage"}
    base["method_config"] = {k: v for k, v in base["method_config"].items() if k not in keys}
    return stable_hash(base)


@dataclass(frozen=True)
class Selection:
    point: Dict[str, Any]
    index: int
    val_top1: float
    seeds: int
    scores: List[Dict[str, Any]]  # every point: its values, mean validation top-1 and seed count

    def describe(self, base: str, grid: Mapping[str, Any]) -> Dict[str, Any]:
        return {"source": "tuned", "base": base, "grid": dict(grid), "point": self.point, "index": self.index,
                "val_top1": self.val_top1, "val_seeds": self.seeds, "scores": self.scores}


def select(records: Iterable[Mapping[str, Any]], task: str, base: str) -> Optional[Selection]:
    """The selected point for `task` among ok tuning records of `base`, or None without any."""
    by_index: Dict[int, Dict[str, Any]] = {}
    for record in records:
        tuning = record.get("tuning") or {}
        if record.get("status") != "ok" or record.get("task") != task or tuning.get("base") != base:
            continue
        entry = by_index.setdefault(int(tuning["index"]), {"point": tuning["point"], "values": []})
        entry["values"].append(float(record["metrics"]["top1"]))
    if not by_index:
        return None
    scores = [{"index": i, "point": e["point"], "val_top1": sum(e["values"]) / len(e["values"]),
               "seeds": len(e["values"])} for i, e in sorted(by_index.items())]
    best = min(scores, key=lambda s: (-s["val_top1"], s["point"].get("lr", 0.0), s["index"]))
    return Selection(best["point"], best["index"], best["val_top1"], best["seeds"], scores)


def tuning_records(records: Iterable[Mapping[str, Any]], suite: str, backbone: str, method: str) -> List[Mapping[str, Any]]:
    return [r for r in records if r.get("tuning") and (r.get("suite"), r.get("backbone"), r.get("method")) ==
            (suite, backbone, method)]


def grid_key(grid: Mapping[str, Any]) -> str:
    return json.dumps(dict(grid), sort_keys=True)
