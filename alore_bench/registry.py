"""A small named registry with wildcard listing, used for methods, backbones and suites, open to
plugins: entries from installed packages' entry points (the registry's `group`) and from local
plugin files ($ALORE_BENCH_PLUGINS, `--plugins`), loaded once on first use, with provenance."""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Generic, Iterable, Iterator, List, Optional, Tuple, TypeVar

from .errors import unknown_name_error

T = TypeVar("T")
PLUGINS_ENV = "ALORE_BENCH_PLUGINS"
# One line per plugin that could not be loaded (also printed to stderr when it happens).
PLUGIN_PROBLEMS: List[str] = []
# Provenance of the plugin being loaded now: its registrations are attributed to it.
_LOADING: List[Dict[str, Any]] = []
_FILES_LOADED = False


class PluginClash(Exception):
    """A plugin registered a name a built-in (or another plugin) already has."""


def _report(line: str) -> None:
    PLUGIN_PROBLEMS.append(line)
    print(f"alore-bench: {line}", file=sys.stderr)


def report_again(line: str) -> None:
    """A plugin problem read back from a cache (the plugin was not loaded this time): said once."""
    if line not in PLUGIN_PROBLEMS:
        _report(line)


@contextmanager
def _plugin(provenance: Dict[str, Any]):
    _LOADING.append(provenance)
    try:
        yield
    finally:
        _LOADING.pop()


def plugin_files() -> List[Path]:
    return [Path(p).expanduser() for p in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if p.strip()]


def load_plugin_files() -> None:
    """Import each local plugin file once (they register through the registries' `register`)."""
    global _FILES_LOADED
    if _FILES_LOADED:
        return
    _FILES_LOADED = True
    for path in plugin_files():
        label = f"plugin file {path}"
        if not path.is_file():
            _report(f"{label}: no such file (from --plugins or ${PLUGINS_ENV})")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        name = f"alore_bench_plugin_{digest[:12]}"
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            with _plugin({"file": str(path.resolve()), "sha256": digest}):
                spec.loader.exec_module(module)
        except PluginClash as error:
            _report(f"{label}: {error}")
        except Exception as error:  # an import error in one plugin must not break the others
            sys.modules.pop(name, None)
            _report(f"{label}: could not load it ({type(error).__name__}: {_first_line(error)})")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else ""


def plugins_fingerprint() -> str:
    """What the installed and local plugins are, without importing them (for caches of listings)."""
    parts = []
    for group in ("alore_bench.methods", "alore_bench.backbones", "alore_bench.suites"):
        for ep in metadata.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            parts.append(f"{group}:{ep.name}={ep.value}@{dist.version if dist else ''}")
    for path in plugin_files():
        parts.append(f"{path}:{path.stat().st_mtime_ns if path.is_file() else 'missing'}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16] if parts else ""


# Entries registered in this process by code outside the package (the Python API, a notebook, a
# test): caches of registry tables include them in their key, so they are never served stale.
REGISTERED_HERE: List[str] = []


def registered_here_fingerprint() -> str:
    return hashlib.sha256("\n".join(sorted(REGISTERED_HERE)).encode()).hexdigest()[:16] if REGISTERED_HERE else ""


class Registry(Generic[T]):
    """Maps names (and aliases) to entries; `register` works as a decorator or a call.

    `group` is the entry-point group plugins register under; `adapt` turns what an entry point
    loads (an entry, a list of them, a file) into (name, entry) pairs."""

    def __init__(self, kind: str, option: str, group: Optional[str] = None,
                 adapt: Optional[Callable[[Any], Iterable[Tuple[str, T]]]] = None):
        self.kind = kind
        self.option = option
        self.group = group
        self.adapt = adapt
        self._entries: Dict[str, T] = {}
        self._aliases: Dict[str, str] = {}
        self._provenance: Dict[str, Dict[str, Any]] = {}
        self._plugins_loaded = group is None
        # Entries made on demand from a name with a prefix (e.g. `timm:<model>`), kept once made.
        self._prefixes: Dict[str, Callable[[str], T]] = {}
        self._made: Dict[str, T] = {}
        # Entries whose name is known now but that are built on first `get` (e.g. from a library's
        # schema): listing and checking names stays cheap.
        self._pending: Dict[str, Callable[[], T]] = {}

    def register_lazy(self, name: str, make: Callable[[], T]) -> None:
        """Register `name` now and build its entry with `make()` when it is first looked up."""
        if name in self._entries or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._pending[name] = make
        self._entries[name] = None  # type: ignore[assignment]  (a place in the listing order)

    def register_prefix(self, prefix: str, make: Callable[[str], T]) -> None:
        """Names `prefix<rest>` are entries made by `make(name)` (which raises a UserError for a bad name)."""
        self._prefixes[prefix] = make

    def register(self, name: str | T, entry: T | None = None, aliases: tuple[str, ...] = ()) -> Callable[[T], T] | T:
        """`register(name, entry)`, `register(entry)` for an entry that carries its `.name` (a
        MethodSpec, a BackboneSpec), or `@register(name)` as a decorator."""
        if not isinstance(name, str):  # register(METHOD): the entry names itself
            entry, name = name, getattr(name, "name", None)
            if not isinstance(name, str):
                raise TypeError(f"{self.kind} registry: register(name, entry), or register(entry) for an entry "
                                f"with a .name; got {type(entry).__name__}")

        def add(obj: T) -> T:
            if name in self._entries or name in self._aliases:
                if _LOADING:
                    owner = self._provenance.get(name)
                    raise PluginClash(f"{self.kind} {name!r} clashes with the "
                                      f"{'plugin' if owner else 'built-in'} {self.kind} of that name; rename it")
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            if _LOADING:
                self._provenance[name] = dict(_LOADING[-1])
            elif not str(sys._getframe(depth).f_globals.get("__name__", "")).startswith("alore_bench"):
                REGISTERED_HERE.append(f"{self.kind}:{name}")
            return obj

        depth = 2 if entry is not None else 1  # the caller of register(), or of the decorator it returned
        return add(entry) if entry is not None else add

    def provenance(self, name: str) -> Optional[Dict[str, Any]]:
        """Where a plugin entry came from (distribution and version, or file and sha256); None for built-ins."""
        self._ensure_plugins()
        return self._provenance.get(self.canonical(name))

    def _ensure_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        load_plugin_files()
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            provenance = {"entry_point": f"{ep.name} = {ep.value}", "distribution": dist.name if dist else None,
                          "version": dist.version if dist else None}
            label = f"plugin {ep.name} ({provenance['distribution'] or 'unknown distribution'})"
            try:
                loaded = ep.load()
                with _plugin(provenance):
                    for name, entry in (self.adapt(loaded) if self.adapt else [(ep.name, loaded)]):
                        self.register(name, entry)
            except PluginClash as error:
                _report(f"{label}: {error}")
            except Exception as error:  # an import error in one plugin must not break the others
                _report(f"{label}: could not load {self.kind} ({type(error).__name__}: {_first_line(error)})")

    def canonical(self, name: str) -> str:
        self._ensure_plugins()
        if name in self._entries or name in self._made:
            return name
        if name in self._aliases:
            return self._aliases[name]
        for prefix, make in self._prefixes.items():
            if name.startswith(prefix):
                self._made[name] = make(name)
                return name
        raise unknown_name_error(self.kind, name, list(self._entries) + list(self._aliases), self.option)

    def get(self, name: str) -> T:
        name = self.canonical(name)
        if name in self._pending:
            self._entries[name] = self._pending[name]()
            del self._pending[name]
        return self._entries[name] if name in self._entries else self._made[name]

    def names(self, pattern: str = "*") -> List[str]:
        self._ensure_plugins()
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: str) -> bool:
        self._ensure_plugins()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        self._ensure_plugins()
        return iter(self._entries)

    def __len__(self) -> int:
        self._ensure_plugins()
        return len(self._entries)


def entries_of(kind: type) -> Callable[[Any], List[Tuple[str, Any]]]:
    """An `adapt` for plugins that export one `kind` object (named by its `.name`) or a list of them."""

    def adapt(loaded: Any) -> List[Tuple[str, Any]]:
        items = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
        wrong = [type(item).__name__ for item in items if not isinstance(item, kind)]
        if wrong:
            raise TypeError(f"expected {kind.__name__} objects, got {', '.join(wrong)}")
        return [(item.name, item) for item in items]

    return adapt
