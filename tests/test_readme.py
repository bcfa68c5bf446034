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


def test_readme_support_matrix_matches_the_budgets_on_each_family():
    from alore_bench.params import trainable_without_head

    backbones = ("vit_b16", "swin_b", "convnext_b", "mixer_b16")
    text = README.read_text()
    section = text[text.index("### Methods on every family"):text.index("### What methods cost")]
    rows = re.findall(r"^\| `([a-z_:0-9]+)` \| ([^|]+)\| ([^|]+)\| ([^|]+)\| ([^|]+)\|$", section, flags=re.M)
    matrix = {name: [cell.strip() for cell in cells] for name, *cells in rows}
    assert set(matrix) == set(METHODS), "README support matrix and registry differ"
    for name, cells in matrix.items():
        for backbone, cell in zip(backbones, cells):
            count = trainable_without_head(name, backbone)
            if isinstance(count, int):
                assert cell == f"{count:,}", (name, backbone)
            else:
                assert cell == ("sites=mlp" if "sites=mlp" in count else "n/a"), (name, backbone, count)


def test_readme_add_your_own_method_passes_the_contract():
    from alore_bench import conformance

    text = README.read_text()
    section = text[text.index("## Add your own method"):text.index("### Python API")]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    assert len(code.splitlines()) < 40
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (our own README's example)
    spec = namespace["METHOD"]
    for _label, check in conformance.CHECKS:
        check(spec, spec.default_config())
