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


def test_a_cached_table_says_again_what_a_broken_plugin_said_when_it_was_built(tmp_path, monkeypatch, capsys):
    from alore_bench import code_cache, registry

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(registry, "PLUGIN_PROBLEMS", [])

    def build():
        registry._report("plugin file /x/bad.py: could not load it (RuntimeError: boom)")
        return {"rows": [["a"]]}

    assert code_cache.cached("test/said", build) == {"rows": [["a"]]}
    monkeypatch.setattr(registry, "PLUGIN_PROBLEMS", [])  # a new process: the plugin is not loaded again
    capsys.readouterr()
    assert code_cache.cached("test/said", lambda: {"rows": []}) == {"rows": [["a"]]}  # from the cache
    assert "could not load it (RuntimeError: boom)" in capsys.readouterr().err


def test_a_lazy_entry_is_listed_at_once_and_built_once_on_first_lookup():
    registry: Registry[Entry] = Registry("thing", "--thing")
    built = []
    registry.register("first", Entry("first"))
    registry.register_lazy("later", lambda: built.append(1) or Entry("later"))
    registry.register("last", Entry("last"))
    assert registry.names() == ["first", "later", "last"] and "later" in registry and not built
    assert registry.get("later").name == "later" and registry.get("later") is registry.get("later")
    assert built == [1]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_lazy("first", lambda: Entry("first"))


def test_lazy_callables_import_on_first_call_compare_by_name_and_pickle():
    import pickle

    from alore_bench.methods.base import Lazy

    join = Lazy("os.path:join")
    assert join("a", "b") == "a/b" and join == Lazy("os.path:join") and join != Lazy("os.path:split")
    assert pickle.loads(pickle.dumps(join))("c", "d") == "c/d"
    with pytest.raises(ValueError, match="package.module:function"):
        Lazy("os.path.join")
    with pytest.raises(AttributeError):
        Lazy("os.path:no_such_function")()
