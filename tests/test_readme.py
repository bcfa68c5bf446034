"""The README stays true: its method table agrees with the registry's computed budgets."""

from __future__ import annotations

import re
from pathlib import Path

from alore_bench.methods import METHODS
from alore_bench.params import vit_b16_trainable_without_head

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_method_table_matches_list_methods():
    rows = re.findall(r"^\| `([a-z_:0-9]+)` \| ([\d,]+) \| (yes|no) \|", README.read_text(), flags=re.M)
    table = {name: (int(count.replace(",", "")), mergeable == "yes") for name, count, mergeable in rows}
    assert set(table) == set(METHODS), "README method table and registry differ"
    for name, (count, mergeable) in table.items():
        assert count == vit_b16_trainable_without_head(name), name
        assert mergeable == METHODS.get(name).mergeable, name
