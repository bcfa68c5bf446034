"""The registries as tables of plain text (`alore-bench list`): suites, methods with their budgets,
backbones, presets and method options. Each table is built once per version of the code and read
back from the code cache afterwards (no torch, timm or peft import); only the backbones' "found"
column is looked up live."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .errors import FieldStyle, UserError, param, python_style, render_fields, unknown_name_error

KINDS = ("suites", "methods", "backbones", "presets")


@dataclass
class TextTable:
    title: str
    columns: List[Tuple[str, str]]  # (header, justify)
    rows: List[List[str]] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return {"title": self.title, "columns": [list(c) for c in self.columns], "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Dict) -> "TextTable":
        return cls(data["title"], [tuple(c) for c in data["columns"]], [list(r) for r in data["rows"]])


def cached(key: str, build: Callable[[], TextTable]) -> TextTable:
    from . import code_cache

    return TextTable.from_dict(code_cache.cached(key, lambda: build().to_dict(),
                                                 lambda data: isinstance(data, dict) and "rows" in data))


def registry_tables(what: Optional[str] = None, match: str = "*", backbone: str = "vit_b16", options: bool = False,
                    data_dir: Optional[Path] = None, style: FieldStyle = python_style) -> List[TextTable]:
    """The tables `alore-bench list [what]` prints; parameters named in cells (a method's reason
    not to apply) read as `style` has them (the command line: as flags)."""
    if what is not None and what not in KINDS:
        raise unknown_name_error("registry", what, KINDS, param("what"))
    builders = {"suites": suites_table, "methods": lambda m: methods_table(m, backbone), "backbones": backbones_table,
                "presets": presets_table}
    out = []
    for name in [what] if what else KINDS:
        table = cached(f"list/{name}/{match}/{backbone if name == 'methods' else ''}", lambda: builders[name](match))
        out.append(with_weights_found(table, data_dir) if name == "backbones" else table)
        if name == "methods" and options:
            out.append(cached(f"list/options/{match}", lambda: method_options_table(match)))
    if not any(table.rows for table in out):
        raise UserError(f"{param('match', match)}: matches no {what or 'entry'} (shell-style pattern, e.g. 'vit_*' "
                        f"or '*lora*'); leave it out to list them all")
    for table in out:
        table.rows = [[render_fields(cell, style) for cell in row] for row in table.rows]
    return out


def with_weights_found(table: TextTable, data_dir: Optional[Path]) -> TextTable:
    """The backbones table with the live facts: the weights folder and whether each file is in it."""
    from .paths import default_data_dir, weights_folder

    folder = weights_folder(default_data_dir(data_dir))
    column = [h for h, _j in table.columns].index("weights file")
    found = ["yes" if row[column].startswith("(") or (folder / row[column]).is_file() else "no" for row in table.rows]
    return TextTable(f"backbones (weights folder: {folder}; --weights-dir or $ALORE_BENCH_WEIGHTS to change it; "
                     "any timm model as timm:<name>)", [*table.columns, ("found", "left")],
                     [[*row, mark] for row, mark in zip(table.rows, found)])


def method_options_table(match: str) -> TextTable:
    import typing

    from .config import allowed_values, field_help
    from .methods import METHODS

    table = TextTable("method options (--opt key=value)",
                      [(c, "left") for c in ("method", "option", "default", "allowed", "help")])
    for name in METHODS.names(match):
        cls = METHODS.get(name).config_cls
        helps, hints = field_help(cls), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            table.rows.append([name, f.name, repr(f.default), allowed_values(hints[f.name]), helps.get(f.name, "")])
    return table


def suites_table(match: str = "*") -> TextTable:
    from .data.suites import SUITES

    table = TextTable("suites", [(c, "left") for c in ("suite", "tasks", "groups", "source", "description")])
    for name in SUITES.names(match):
        suite = SUITES.get(name)
        groups = ", ".join(f"{g} {sum(t.group == g for t in suite.tasks)}" for g in suite.groups)
        table.rows.append([name, str(len(suite.tasks)), groups, suite.source, suite.description])
    return table


def methods_table(match: str = "*", backbone: str = "vit_b16") -> TextTable:
    from .backbones import BACKBONES
    from .methods import METHODS
    from .params import mean_head_parameters, trainable_without_head

    spec_b = BACKBONES.get(backbone)
    width = spec_b.create(num_classes=0, device="meta").num_features
    heads = {suite: mean_head_parameters(suite, width) for suite in ("vtab1k", "fgvc")}
    numeric = ("trainable", "+head VTAB-1k", "+head FGVC")
    table = TextTable(f"methods (trainable parameters on {spec_b.display_name}, default options: without the head, "
                      f"and with the mean head of VTAB-1k ({heads['vtab1k']:,.0f}) and of FGVC ({heads['fgvc']:,.0f}))",
                      [(c, "right" if c in numeric else "left")
                       for c in ("method", *numeric, "mergeable", "paper", "summary")])
    for name in METHODS.names(match):
        spec = METHODS.get(name)
        count = trainable_without_head(name, spec_b.name)
        mergeable = "yes" if spec.mergeable else "no"
        if isinstance(count, str):  # the method does not apply to this family: the reason, once
            table.rows.append([name, "n/a", "", "", mergeable, spec.paper, count[5:]])
            continue
        table.rows.append([name, f"{count:,}", f"{count + heads['vtab1k']:,.0f}", f"{count + heads['fgvc']:,.0f}",
                           mergeable, spec.paper, spec.summary])
    return table


def backbones_table(match: str = "*") -> TextTable:
    from .backbones import BACKBONES
    from .params import backbone_size

    columns = ("backbone", "params", "input", "normalisation", "weights file", "timm tag", "summary")
    table = TextTable("backbones", [(c, "right" if c == "params" else "left") for c in columns])
    for name in BACKBONES.names(match):
        spec = BACKBONES.get(name)
        norm = "0.5 / 0.5" if tuple(spec.mean) == (0.5, 0.5, 0.5) else "ImageNet mean / std"
        file = spec.weight_file if spec.resolver is None else "(in the package)"
        table.rows.append([name, f"{backbone_size(name) / 1e6:.1f}M", f"{spec.input_size} px {spec.interpolation}",
                           norm, file, spec.weight_tag, spec.summary
                           + (f" (--weights {spec.release}, the default)" if spec.releases else "")])
        for release in spec.releases:  # the same architecture's other published files
            table.rows.append([f"{name} --weights {release.name}", "", "", "", release.file, release.tag,
                               release.summary])
    return table


def presets_table(match: str = "*") -> TextTable:
    from .presets import PRESETS

    table = TextTable("presets (run --preset NAME): published per-task settings",
                      [(c, "left") for c in ("preset", "method", "suite", "per task", "published with", "source")])
    for name in PRESETS.names(match):
        preset = PRESETS.get(name)
        keys = sorted({k for options in preset.tasks.values() for k in options if k != "recipe"})
        keys += [f"recipe.{k}" for k in sorted(preset.recipe_keys())]
        published = ", ".join(param(k, v) for k, v in preset.published.items()) or "—"
        table.rows.append([name, preset.method, preset.suite, ", ".join(keys), published, preset.source])
    return table
