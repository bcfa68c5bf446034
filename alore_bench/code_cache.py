"""A small JSON cache of what only changes with the code (parameter budgets, the registry tables
`alore-bench list` prints), keyed by the installed versions of torch, timm and peft and the source
of the modules and suite files those depend on; reading it imports none of them, so `list` is fast."""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Optional

PACKAGE = Path(__file__).resolve().parent


def cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "alore-bench" / "budgets.json"


@lru_cache(maxsize=1)
def code_version() -> str:
    """The installed versions of torch, timm and peft plus the source of the method, backbone,
    suite and preset definitions and of the table builders (an edited method is never read from a
    stale cache)."""
    versions = []
    for dist in ("torch", "timm", "peft"):
        try:
            versions.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            versions.append("none")
    digest = hashlib.sha256(" ".join(versions).encode())
    # listing.py builds the tables: a changed layout must not be served from the cache.
    sources = [*PACKAGE.glob("methods/**/*.py"), *PACKAGE.glob("backbones/*.py"), PACKAGE / "presets.py",
               PACKAGE / "listing.py",
               PACKAGE / "data" / "suites.py", *PACKAGE.glob("suite_defs/**/*.toml"),
               *PACKAGE.parent.glob("suites/**/*.toml")]
    for source in sorted(set(sources)):
        if source.is_file():
            digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def read_entries() -> Dict[str, Any]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data.get("budgets", {}) if isinstance(data, dict) and data.get("code") == code_version() else {}


def write_entry(key: str, value: Any) -> None:
    """Add one entry (atomically; a read-only home only means it is computed again next time)."""
    path = cache_path()
    entries = {**read_entries(), key: value}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"code": code_version(), "budgets": entries}, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def cached(key: str, build: Callable[[], Any], valid: Optional[Callable[[Any], bool]] = None,
           registered_here: bool = True) -> Any:
    """The entry `key` (per version of the installed plugins too), built and stored when missing or not
    `valid`. What plugins said while it was built (a plugin that fails to load or clashes) is kept
    with it and said again when it is read: a warm cache does not hide a broken plugin.
    `registered_here`: entries registered in this process by code outside the package are part of
    the key (tables listing every entry); off for lookups that fall back to the live registry."""
    from . import registry

    here = registry.registered_here_fingerprint() if registered_here else ""
    key = f"{key}/{registry.plugins_fingerprint()}" + (f"/here-{here}" if here else "")
    entry = read_entries().get(key)
    if isinstance(entry, dict) and set(entry) == {"value", "said"} and (valid is None or valid(entry["value"])):
        for line in entry["said"]:
            registry.report_again(line)
        return entry["value"]
    before = len(registry.PLUGIN_PROBLEMS)
    value = build()
    write_entry(key, {"value": value, "said": registry.PLUGIN_PROBLEMS[before:]})
    return value
