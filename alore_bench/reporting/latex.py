"""Paper-ready LaTeX tables: booktabs tabulars from pandas' Styler at \\footnotesize, never shrunk.
A table wider than the text is split at group boundaries into tabulars stacked in one float (each
repeats the method and parameter columns), or set on a landscape page; a caption that names suite,
backbone, metric, split and seeds; notes only for what the table shows (or none, `--no-notes`);
published rows cited in plain text unless a .bib file is given.

The preamble a table needs (`Layout.preamble`) is written as a comment above it. What the table
says (escaping, widths, caption, notes) is in latex_text.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import pandas as pd

from ..errors import UserError, param
from .latex_text import (DEFAULT_WIDTH, LINE_PT, NOTE_CHAR_PT, NOTE_LINE_PT, SUITE_NAMES, TABCOLSEP_PT,
                         TEXT_HEIGHT_PT, WIDTH_MARGIN, _plural, caption, cell_tex, header_lines, header_width,
                         latex_escape, latex_notes, parse_width, read_bib_keys, short_citation, text_width)
from .reference import reference_deltas
from .tables import MEAN_GROUPS, MEAN_TASKS, Cell, SuiteTable

__all__ = ["AUTO", "DEFAULT_WIDTH", "FITS", "LAYOUTS", "LatexTable", "Layout", "latex_escape", "parse_width",
           "read_bib_keys", "to_latex"]

FITS = ("auto", "split", "rotate", "landscape", "none")


@dataclass(frozen=True)
class Layout:
    headers: str  # stack (at spaces and hyphens), rotate (90 degrees) or plain
    landscape: bool  # a sidewaystable page
    split: bool  # columns over stacked tabulars that fit the width

    @property
    def preamble(self) -> str:
        packages = ["booktabs"] + (["graphicx"] if self.headers == "rotate" else []) + \
            (["rotating"] if self.landscape else [])
        return rf"\usepackage{{{','.join(packages)}}}"


LAYOUTS = {"split": Layout("stack", False, True), "rotate": Layout("rotate", False, True),
           "landscape": Layout("stack", True, True), "none": Layout("plain", False, False)}
# auto: the first of these whose table takes at most two tabulars (a page holds two of a VTAB-1k
# table with its published rows and notes), else the last.
AUTO = (LAYOUTS["split"], LAYOUTS["rotate"], Layout("rotate", True, True))
MAX_AUTO_PARTS = 2


@dataclass
class Column:
    group: str  # the header above it ('' for none)
    header: str  # TeX
    cells: List[str]  # TeX, one per line of the table
    means: List[Optional[float]]  # what bold / underline rank (None: not ranked)

    def width(self) -> float:
        return max([header_width(self.header)] + [text_width(c) for c in self.cells]) + 2 * TABCOLSEP_PT


def shown_columns(table: SuiteTable) -> List[Tuple[str, str]]:
    """The table's columns less the means of single-task groups (they would repeat their task)."""
    sizes = {g: sum(1 for t in table.suite.tasks if t.group == g) for g in table.suite.groups}
    return [(c, g) for c, g in table.columns() if not (c.endswith(" mean") and sizes.get(g) == 1)]


def column_header(table: SuiteTable, column: str, group: str) -> Tuple[str, str]:
    """(group header, column label): a task under its group (where the suite has several), a
    group's mean under its group as 'Mean', the overall means under 'Mean' as 'groups' and 'tasks'."""
    if column in (MEAN_GROUPS, MEAN_TASKS):
        label = ("groups" if column == MEAN_GROUPS else "tasks") if len(table.suite.groups) > 1 else "Mean"
        group = "Mean" if len(table.suite.groups) > 1 else ""
    elif column.endswith(" mean"):
        return column[: -len(" mean")], "Mean"
    else:
        return (group if len(table.suite.groups) > 1 else ""), table.column_label(column)
    if table.partial:
        label += f" [{table.partial[0]} of {table.partial[1]}]"
    return group, label


class LatexTable:
    """One suite table as LaTeX: built column by column, then split into parts that fit."""

    def __init__(self, table: SuiteTable, std: bool, names, fit: str, width: str, notes: bool,
                 bib: Optional[set], warn: Optional[Callable[[str], None]] = None):
        self.table, self.std, self.names, self.notes, self.bib, self.warn = table, std, names, notes, bib, warn
        self.fit, self.width_text, self.text_width_pt = fit, width, parse_width(width)
        self.layout = LAYOUTS.get(fit, AUTO[0])
        self.multi_backbone = len({r.key[0] for r in table.rows} | {r["backbone"] for r in table.reference}) > 1
        self.deltas = reference_deltas(table) if table.reference else {}

    # --- cells ---------------------------------------------------------------------------------

    def _name(self, kind: str, name: str) -> str:
        """A display name: a user's --name is LaTeX already; a registry's is escaped."""
        if name in self.names.overrides:
            return self.names.overrides[name]
        return latex_escape(self.names.method(name) if kind == "method" else self.names.backbone(name))

    def reference_label(self, ref) -> str:
        label = latex_escape(ref["label"])
        if self.bib is not None and ref.get("cite"):
            if ref["cite"] not in self.bib:
                raise UserError(f"{param('bib')}: no entry {ref['cite']!r} for the published row {ref['label']}; "
                                "add it to the .bib file or leave --bib out (plain-text citations)")
            label += rf"~\cite{{{ref['cite']}}}"
        elif not self.notes:
            label += f" ({latex_escape(short_citation(ref['source']))})"
        return label + (rf"$^{{\mathrm{{{ref['ref_id']}}}}}$" if self.notes else "")

    def lead_columns(self) -> List[Column]:
        table, rows, refs = self.table, self.table.rows, self.table.reference
        methods = [self._name("method", r.key[1]) + (r"$^{*}$" if r.missing else "") for r in rows]
        methods += [self.reference_label(ref) for ref in refs]
        out = []
        if self.multi_backbone:
            out.append(Column("", "Backbone", [self._name("backbone", r.key[0]) for r in rows]
                              + [self._name("backbone", ref["backbone"]) for ref in refs], [None] * len(methods)))
        out.append(Column("", "Method", methods, [None] * len(methods)))
        if table.any_varying:
            out.append(Column("", "Settings", [latex_escape(table.settings_text(r)) for r in rows]
                              + ["published"] * len(refs), [None] * len(methods)))
        from .render import fmt_params

        out.append(Column("", header_lines("Params (M)", self.layout.headers),
                          [fmt_params(r.params_m).replace("—", "--") for r in rows]
                          + [fmt_params(ref["params_m"]) for ref in refs], [None] * len(methods)))
        return out

    def data_columns(self) -> List[Column]:

        table = self.table
        out = []
        for column, group in shown_columns(table):
            group, label = column_header(table, column, group)
            cells: List[Optional[Cell]] = [r.cells.get(column) for r in table.rows] + \
                [ref["cells"].get(column) for ref in table.reference]
            texts = [cell_tex(c, self.std) for c in cells[:len(table.rows)]] + \
                [cell_tex(c, False) for c in cells[len(table.rows):]]
            out.append(Column(latex_escape(group), header_lines(label, self.layout.headers), texts,
                              [c.mean if c else None for c in cells]))
        if table.reference:
            marks = []
            for row in table.rows:
                delta, why = self.deltas.get(row.key, (None, ""))
                marks.append("n/c" if delta is None and why else "--" if delta is None else f"{delta:+.1f}")
            out.append(Column("", header_lines("Δ vs ref", self.layout.headers), marks + [""] * len(table.reference),
                              [None] * len(marks + table.reference)))
        return out

    # --- layout --------------------------------------------------------------------------------

    def parts(self, lead: List[Column], data: List[Column]) -> List[List[Column]]:
        """The data columns in parts that fit the width beside the lead columns: whole groups
        where they fit, a group split at a column only when it alone is too wide."""
        if not self.layout.split:
            return [data]
        room = self.page()[0] * WIDTH_MARGIN - sum(c.width() for c in lead)
        units: List[List[Column]] = []
        for column in data:
            if units and units[-1][0].group == column.group and column.group:
                units[-1].append(column)
            else:
                units.append([column])
        parts: List[List[Column]] = [[]]
        for unit in units:
            for column in unit:
                used = sum(c.width() for c in parts[-1])
                fits = used + column.width() <= room
                starts_unit = column is unit[0]
                unit_fits_whole = sum(c.width() for c in unit) <= room
                if parts[-1] and (not fits or (starts_unit and unit_fits_whole
                                               and used + sum(c.width() for c in unit) > room)):
                    parts.append([])
                parts[-1].append(column)
        return [p for p in parts if p]

    def tabular(self, lead: List[Column], part: List[Column], rules_after: int) -> str:
        columns = lead + part
        top = [c.group for c in columns]
        # A group split over two parts keeps its name above its columns in each.
        headers = pd.MultiIndex.from_arrays([top, [c.header for c in columns]]) if any(top) \
            else pd.Index([c.header for c in columns])
        frame = pd.DataFrame(list(zip(*[c.cells for c in columns])), columns=headers)
        props = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for j, column in enumerate(columns):
            for i, rank in enumerate(_ranks(column.means)):
                if rank is not None and rank < 2:
                    props.iloc[i, j] = "textbf:--rwrap;" if rank == 0 else "underline:--rwrap;"
        styler = frame.style.hide(axis="index").apply(lambda _frame: props, axis=None)
        column_format = "l" * len(lead) + "r" * len(part)
        tex = styler.to_latex(column_format=column_format, hrules=True, multicol_align="c")
        lines = self._group_rules(tex.strip().split("\n"), top)
        if rules_after and rules_after < len(self.table.rows) + len(self.table.reference):
            body = lines.index(r"\midrule") + 1
            lines.insert(body + rules_after, r"\midrule")  # published rows below their own rule
        return "\n".join(lines)

    @staticmethod
    def _group_rules(lines: List[str], top: List[str]) -> List[str]:
        """A \\cmidrule under each group header, so the groups read apart."""
        spans, start = [], 0
        for i in range(1, len(top) + 1):
            if i == len(top) or top[i] != top[start]:
                if top[start]:
                    spans.append(rf"\cmidrule(lr){{{start + 1}-{i}}}")
                start = i
        if not spans:
            return lines
        header = next(i for i, l in enumerate(lines) if r"\multicolumn" in l)
        return lines[:header + 1] + [" ".join(spans)] + lines[header + 1:]

    def page(self) -> Tuple[float, float]:
        """(width, height) in pt the table has: the text's, or a landscape page's."""
        return (TEXT_HEIGHT_PT, self.text_width_pt) if self.layout.landscape else (self.text_width_pt, TEXT_HEIGHT_PT)

    def height(self, lead: List[Column], parts: List[List[Column]], notes: List[str]) -> float:
        """Estimated height in pt: each part's header and lines, the caption and the notes."""
        lines = len(self.table.rows) + len(self.table.reference)
        total = 3 * LINE_PT  # caption
        for part in parts:
            headers = lead + part
            if self.layout.headers == "rotate":
                header = max(text_width(latex_escape(c.header.split("{")[-1].rstrip("}"))) for c in headers) + 4
            else:
                header = max(c.header.count(r"\\") + 1 for c in headers) * LINE_PT
            total += header + (LINE_PT + 4 if any(c.group for c in part) else 0) + lines * LINE_PT + 16
        width = self.page()[0]
        total += sum(len(n) * NOTE_CHAR_PT // width + 1 for n in notes) * NOTE_LINE_PT
        return total

    def laid_out(self, notes: List[str]) -> Tuple[List[Column], List[List[Column]]]:
        """The lead columns and the parts, under the chosen layout (auto: the first of AUTO whose
        table fits its page in at most two parts; failing that, the one that overflows least)."""
        tried = []
        for layout in (AUTO if self.fit == "auto" else (self.layout,)):
            self.layout = layout
            lead = self.lead_columns()
            parts = self.parts(lead, self.data_columns())
            overflow = self.height(lead, parts, notes) - self.page()[1]
            if len(parts) <= MAX_AUTO_PARTS and overflow <= 0:
                return lead, parts
            tried.append((max(overflow, 0.0), len(parts), layout, lead, parts))
        overflow, _n, self.layout, lead, parts = min(tried, key=lambda t: (t[0], t[1]))
        if overflow > 0 and self.warn is not None:
            other = "" if self.fit in ("auto", "landscape") else f", or try {param('latex_fit', 'auto')}"
            self.warn(f"the LaTeX table of {SUITE_NAMES.get(self.table.suite.name, self.table.suite.name)} is about "
                      f"{overflow:.0f}pt taller than a page at {param('latex_width', self.width_text)} "
                      f"({_plural(len(parts), 'tabular')}): leave out its notes ({param('footnotes', False)}) or "
                      f"published rows{other}")
        return lead, parts

    def render(self) -> str:
        table = self.table
        notes = latex_notes(table, self.names, self.multi_backbone, self.bib) if self.notes else []
        lead, parts = self.laid_out(notes)
        env = "sidewaystable" if self.layout.landscape else "table*"
        tabulars = [self.tabular(lead, part, len(table.rows) if table.reference and table.rows else 0)
                    for part in parts]
        out = [f"% alore-bench table: needs {self.layout.preamble}",
               rf"\begin{{{env}}}" + ("" if env == "sidewaystable" else "[t]"), r"\centering", r"\footnotesize",
               rf"\setlength{{\tabcolsep}}{{{TABCOLSEP_PT:g}pt}}",
               rf"\caption{{{caption(table, self.std, self.names, len(parts))}}}",
               rf"\label{{tab:{table.suite.name}-{table.stage}}}",
               "\n\\par\\medskip\n".join(tabulars)]
        if notes:
            out.append(r"\par\smallskip")
            out.append(r"\parbox{\linewidth}{\raggedright\scriptsize " + r" \par ".join(notes) + "}")
        out.append(rf"\end{{{env}}}")
        return "\n".join(out) + "\n"


def _ranks(values: Sequence[Optional[float]]) -> List[Optional[int]]:
    """0 for the best value (to 0.1), 1 for the second best; ties share a rank."""
    values = [None if v is None or v != v else v for v in values]
    distinct = sorted({round(v, 1) for v in values if v is not None}, reverse=True)
    return [None if v is None else distinct.index(round(v, 1)) for v in values]


def to_latex(table: SuiteTable, std: bool = False, names=None, fit: str = "auto", width: str = DEFAULT_WIDTH,
             notes: bool = True, bib: Optional[set] = None, warn: Optional[Callable[[str], None]] = None) -> str:
    """A booktabs table* (or a landscape sidewaystable) at \\footnotesize, split to fit `width`;
    `warn` hears when no layout fits the table on one page."""
    from .render import Names

    if fit not in FITS:  # (the report checks this first; the function is public)
        raise UserError(f"{param('latex_fit', fit)}: choose {', '.join(FITS)}")
    return LatexTable(table, std, names or Names(), fit, width, notes, bib, warn).render()


