"""The torch-free registry of built-in methods (`methods.specs`): what it reads from the code cache
is what the libraries say."""

from __future__ import annotations

import dataclasses

import pytest

from alore_bench.methods.specs import peft_types


@pytest.mark.parametrize("kind", sorted(peft_types.PEFT_TYPES))
def test_peft_options_from_the_cache_are_peft_own(kind, tmp_path, monkeypatch):
    """A `peft:<type>` entry's options (names, types, defaults) are the same whether its schema was
    just read from peft or comes back from the code cache."""
    import peft

    from alore_bench.methods.peft_generic import peft_schema

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    direct = peft_schema(peft_types.PEFT_TYPES[kind][0])
    first = peft_types.make_config_class(kind)  # reads peft, fills the cache
    monkeypatch.setattr("alore_bench.methods.peft_generic.peft_schema", lambda name: pytest.fail("peft read again"))
    again = peft_types.make_config_class(kind)
    fields = [(f.name, str(f.type), f.default) for f in dataclasses.fields(again)]
    assert fields == [(f.name, str(f.type), f.default) for f in dataclasses.fields(first)]
    assert [name for name, _t, _d in fields[1:]] == [item["name"] for item in direct]
    peft_cls = getattr(peft, peft_types.PEFT_TYPES[kind][0])
    defaults = {f.name: f.default for f in dataclasses.fields(peft_cls)}
    assert all(defaults[name] == default for name, _t, default in fields[1:])


def test_an_unknown_schema_type_is_refused():
    with pytest.raises(ValueError, match="unknown option type"):
        peft_types.annotation_of("list")
    assert peft_types.annotation_of("int | none") == peft_types.Optional[int]
