"""The registry: names, aliases, wildcard listing, and the ways plugins register."""

from __future__ import annotations

import pytest

from alore_bench.errors import UserError
from alore_bench.registry import Registry


class Entry:
    def __init__(self, name: str):
        self.name = name


def test_register_by_name_by_an_entry_that_names_itself_and_as_a_decorator():
    registry: Registry = Registry("thing", "thing")
    registry.register("a", Entry("a"), aliases=("alpha",))
    registry.register(Entry("b"))  # a plugin file's METHODS.register(METHOD) registers it under its name

    @registry.register("c")
    class C:  # noqa: D401
        pass

    assert registry.names() == ["a", "b", "c"] and registry.names("[ab]") == ["a", "b"]
    assert registry.get("alpha").name == "a" and registry.get("b").name == "b" and registry.get("c") is C
    with pytest.raises(TypeError, match=r"register\(name, entry\), or register\(entry\) for an entry with a .name"):
        registry.register(42)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(Entry("a"))
    with pytest.raises(UserError, match="unknown thing 'd'"):
        registry.get("d")
