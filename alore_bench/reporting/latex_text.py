"""What a LaTeX table says and how wide it is: escaping (TeX quotes and dashes), the widths of
cell text at \\footnotesize (to decide a split), headers stacked or turned, cells, the caption and
the notes (named by display names and settings, never by configuration hash)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import UserError, param
from .reference import reference_deltas
from .tables import STAGE_LABEL, Cell, Row, SuiteTable

# The text width a table is split to fit: a two-column paper's table* (CVPR, ICCV: 6.875in); pass
# --latex-width 5.5in for NeurIPS / ICML / ICLR. A landscape page (9in of text height) is wider.
DEFAULT_WIDTH = "6.875in"
TEXT_HEIGHT_PT = 9 * 72.27  # a page's text height (NeurIPS, CVPR: 9in); a landscape page's width
WIDTH_MARGIN = 0.97  # of the width the estimate may fill: estimates err by a few points
LINE_PT = 9.5  # \footnotesize baselineskip
NOTE_LINE_PT, NOTE_CHAR_PT = 8.0, 3.4  # \scriptsize: a line, and an average character
UNITS_PT = {"pt": 1.0, "in": 72.27, "cm": 72.27 / 2.54, "mm": 72.27 / 25.4}
SUITE_NAMES = {"vtab1k": "VTAB-1k", "fgvc": "FGVC", "demo": "demo"}

# Widths (pt) of Computer Modern at \footnotesize (8pt): digits and bold digits, narrow and wide
# letters; tabular adds 2 \tabcolsep per column (set to 4pt in the float, as papers' wide tables
# do; the type keeps its size). An estimate: enough to decide a split.
TABCOLSEP_PT = 4.0
NARROW = set("iljtf.,:;'!|()[]-")
WIDE = set("MWmw")


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, quotes as TeX quotes (`x' and ``x''), the
    em dash of a missing value as an en dash, and ± and Δ in math mode."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    out = "".join(special.get(ch, ch) for ch in str(text))
    out = re.sub(r'"([^"]*)"', r"``\1''", out)
    out = re.sub(r"(^|[\s(\[])'", r"\1`", out)  # an opening quote; a closing one stays '
    return out.replace("±", r"$\pm$").replace("—", "--").replace("–", "--").replace("Δ", r"$\Delta$")


def parse_width(text: str) -> float:
    """`--latex-width` in pt: a number with pt, in, cm or mm."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(pt|in|cm|mm)\s*", str(text))
    points = float(match.group(1)) * UNITS_PT[match.group(2)] if match else 0.0
    if not 72 <= points <= 72.27 * 40:
        raise UserError(f"{param('latex_width', text)}: give the text width with its unit, e.g. 6.875in, 17cm or "
                        "497pt (between 1in and 40in)")
    return points


def read_bib_keys(path: Optional[Path]) -> Optional[set]:
    """The entry keys of a .bib file (`@article{key,`), or None without one."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"{param('bib', path)}: cannot read it ({exc.strerror or exc}); give a .bib file") from None
    keys = set(re.findall(r"@\s*[A-Za-z]+\s*[{(]\s*([^,\s]+)\s*,", text))
    if not keys:
        raise UserError(f"{param('bib', path)}: no entries (@article{{key, ...}}) found; give a BibTeX file")
    return keys


def text_width(tex: str) -> float:
    """Estimated width in pt of one line of cell TeX at \\footnotesize."""
    small = sum(text_width(m) * 0.7 for m in re.findall(r"\$_\{(.*?)\}\$", tex))  # subscripts: std
    tex = re.sub(r"\$_\{.*?\}\$", "", tex)
    plain = re.sub(r"\\cite\{[^}]*\}", "[0]", tex)
    plain = plain.replace(r"$\pm$", "±").replace(r"\pm", "±").replace(r"$\Delta$", "Δ")
    plain = re.sub(r"\\[A-Za-z]+", "", plain)  # commands take no width; their arguments do
    plain = re.sub(r"[{}$^]", "", plain).replace("~", " ")
    width = small
    for ch in plain:
        width += 2.4 if ch in NARROW else 6.5 if ch in WIDE or ch in "±Δ" else 5.8 if ch.isupper() \
            else 2.7 if ch == " " else 4.6 if ch.isdigit() else 4.2
    return width


def header_lines(label: str, headers: str) -> str:
    """A column header: rotated, or stacked at its spaces and hyphens so a long task name takes the
    width of its longest part, or plain."""
    text = latex_escape(label)
    if headers == "rotate":
        return rf"\rotatebox{{90}}{{{text}}}"
    parts = re.findall(r"[^\s-]+-?", label)
    if headers == "plain" or len(parts) < 2:
        return text
    return r"\shortstack{" + r"\\".join(latex_escape(p) for p in parts) + "}"


def header_width(header: str) -> float:
    if header.startswith(r"\rotatebox"):
        return 9.0  # one line of text, turned
    if header.startswith(r"\shortstack{"):
        return max(text_width(p) for p in header[len(r"\shortstack{"):-1].split(r"\\"))
    return text_width(header)


def cell_tex(cell: Optional[Cell], std: bool) -> str:
    """A mean as papers print it, its std (with `std`) as a subscript (76.4$_{\\pm 0.6}$); -- for none."""
    if cell is None:
        return "--"
    text = f"{cell.mean:.1f}"
    if std and cell.std is not None:
        text += f"$_{{\\pm{cell.std:.1f}}}$"
    return text


def short_citation(source: str) -> str:
    """'Jia et al. 2022' from a reference row's source line: the plain-text citation of a table
    without notes and without a .bib."""
    match = re.search(r"[A-Z][\w-]* et al\.,? \d{4}", source)
    return match.group(0) if match else source.split(",")[0]


def row_name(table: SuiteTable, row: Row, names, multi_backbone: bool) -> str:
    """How a note names a row: its display names and the settings that tell it apart (never the
    configuration hash)."""
    name = names.method(row.key[1])
    if multi_backbone:
        name = f"{names.backbone(row.key[0])} {name}"
    if table.any_varying:
        name += f" ({table.settings_text(row)})"
    return latex_escape(name)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def caption(table: SuiteTable, std: bool, names, parts: int = 1) -> str:
    """Suite, backbone(s), metric, split, seeds (per row where they differ) and protocol."""
    suite = latex_escape(SUITE_NAMES.get(table.suite.name, table.suite.name))
    backbones = sorted({names.backbone(r.key[0]) for r in table.rows}
                       or {names.backbone(r["backbone"]) for r in table.reference})
    text = f"{suite}, {latex_escape(' and '.join(backbones))}: top-1 accuracy (\\%) on the " \
           f"{latex_escape(STAGE_LABEL.get(table.stage, table.stage))} split"
    counts = [len(r.seeds) for r in table.rows]
    if counts:
        usual = max(set(counts), key=lambda n: (counts.count(n), n))
        others = [f"{names.method(r.key[1])} {len(r.seeds)}" for r in table.rows if len(r.seeds) != usual]
        text += (", mean $\\pm$ std over " if std and usual > 1 else ", mean over " if usual > 1 else ", ") + \
            (_plural(usual, "seed") if usual > 1 else "1 seed") + \
            (f" ({latex_escape(', '.join(others))})" if others else "")
    protocols = sorted({r.protocol for r in table.rows if r.protocol})
    if protocols:
        text += f"; protocol {latex_escape(', '.join(protocols))}"
    if table.partial:
        text += f"; {table.partial[0]} of the suite's {table.partial[1]} tasks"
    if table.reference:
        text += "; published rows below the rule"
    text += ". Best per column in \\textbf{bold}, second \\underline{underlined}."
    if parts > 1:
        text += f" The columns are split over {parts} parts."
    return text


def latex_notes(table: SuiteTable, names, multi_backbone: bool, bib: Optional[set]) -> List[str]:
    """The notes a reader of the printed table needs, in TeX: its columns and symbols, incomplete
    rows, rows that cannot be compared with their published row, and where published rows come
    from. Internal details (failed runs, configuration hashes, record paths) stay in the other
    formats."""
    from .render import protocol_warnings

    notes = []
    if len(table.suite.groups) > 1:
        notes.append("Mean under a group: the mean over its tasks. Under Mean, groups: the mean of the group means "
                     "(the VTAB-1k convention); tasks: the mean over all tasks.")
    notes.append("Params (M): trainable parameters without the classification head, in millions, the mean over "
                 "the tasks.")
    if table.any_varying:
        notes.append("Settings: what differs between rows (tuned: selected per task on the validation split; mixed: "
                     "differs between the row's runs).")
    if table.partial:
        notes.append(f"Only {table.partial[0]} of the suite's {table.partial[1]} tasks are shown; the means are over "
                     "those tasks.")
    notes += [latex_escape(w.replace("WARNING: ", "Note: ")) for w in protocol_warnings(table)]
    for row in table.rows:
        if row.missing:
            notes.append(f"$^{{*}}$ {row_name(table, row, names, multi_backbone)} is incomplete: "
                         + latex_escape("; ".join(row.missing)) + "; '--' marks a mean that cannot be taken.")
    if table.reference:
        for row in table.rows:
            delta, why = reference_deltas(table).get(row.key, (None, ""))
            if delta is None and why:
                notes.append(f"n/c: {row_name(table, row, names, multi_backbone)} is not the configuration of its "
                             f"published row ({latex_escape(why)}).")
        notes.append(r"$\Delta$ vs ref: the row's mean minus that of the published row of the same method.")
        # One sentence per source (most published rows share one), then each row's protocol.
        by_source: Dict[Tuple[str, str], List[str]] = {}
        for ref in table.reference:
            if not (bib is not None and ref.get("cite")):
                by_source.setdefault((ref["source"], ref["table"]), []).append(ref["ref_id"])
        if by_source:
            notes.append("Published rows: " + "; ".join(
                f"{id_range(ids)} from {latex_escape(source)} ({latex_escape(where)})"
                for (source, where), ids in by_source.items()) + ".")
        notes.append("Their protocols: " + "; ".join(f"{ref['ref_id']} {latex_escape(ref['protocol'])}"
                                                     for ref in table.reference) + ".")
    return notes


def id_range(ids: Sequence[str]) -> str:
    """R1--R4 for consecutive ids, else R1, R3."""
    numbers = [int(i[1:]) for i in ids]
    if len(ids) > 2 and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
        return f"{ids[0]}--{ids[-1]}"
    return ", ".join(ids)
