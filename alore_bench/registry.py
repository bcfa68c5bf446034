"""A small named registry with wildcard listing, used for methods, backbones and suites."""

from __future__ import annotations

import fnmatch
from typing import Callable, Dict, Generic, Iterator, List, TypeVar

from .errors import unknown_name_error

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to entries; `register` works as a decorator or a call."""

    def __init__(self, kind: str, option: str):
        self.kind = kind
        self.option = option
        self._entries: Dict[str, T] = {}
        self._aliases: Dict[str, str] = {}
        # Entries made on demand from a name with a prefix (e.g. `timm:<model>`), kept once made.
        self._prefixes: Dict[str, Callable[[str], T]] = {}
        self._made: Dict[str, T] = {}

    def register_prefix(self, prefix: str, make: Callable[[str], T]) -> None:
        """Names `prefix<rest>` are entries made by `make(name)` (which raises a UserError for a bad name)."""
        self._prefixes[prefix] = make

    def register(self, name: str, entry: T | None = None, aliases: tuple[str, ...] = ()) -> Callable[[T], T] | T:
        def add(obj: T) -> T:
            if name in self._entries or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return add(entry) if entry is not None else add

    def canonical(self, name: str) -> str:
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
        return self._entries[name] if name in self._entries else self._made[name]

    def names(self, pattern: str = "*") -> List[str]:
        return [n for n in self._entries if fnmatch.fnmatchcase(n, pattern)]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
