"""A report from a results dir: records -> frame -> filtered tables per suite and stage, published
rows, and the chosen view (tables, a paired comparison, efficiency, the long frame) as text in
md / csv / json / tex, plus files written (`out`, figures). Rendering for a terminal is the
caller's; everything else is here."""

from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import UserError, param
from ..io import atomic_write_text, check_input_file, check_output_file
from ..paths import PathLike, as_path
from ..runs.record import load_records
from .compare import compare_rows, compare_text
from .diagnostics import DIAGNOSTICS, best_of_test_text
from .efficiency import efficiency_text
from .frame import apply_filters, parse_filters, records_frame
from .reference import load_reference
from .latex import DEFAULT_WIDTH, FITS, parse_width, read_bib_keys
from .render import Names, tables_text
from .tables import SuiteTable, suite_tables

FORMATS = {".md": "md", ".csv": "csv", ".json": "json", ".tex": "tex"}
STAGES = ("final", "tune", "all")
FIGURES = (".png", ".svg", ".pdf")


@dataclass
class Report:
    tables: List[SuiteTable]
    frame: Any  # pandas.DataFrame of the (filtered) records
    names: Names
    view: str = "tables"  # tables | compare | efficiency | long | diagnostic
    fmt: Optional[str] = None  # None: the caller renders `tables` / `compare` for a terminal
    text: Optional[str] = None  # the output in `fmt`, when one was chosen
    std: Optional[bool] = None
    compare: Optional[Dict[str, Any]] = None
    notes: List[str] = dc_field(default_factory=list)  # warnings and notes, in order
    written: List[Path] = dc_field(default_factory=list)


def parse_names(items: Sequence[str]) -> Names:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise UserError(f"{param('names', item)}: expected method_or_backbone=TEXT, e.g. lora=\"LoRA\"")
        overrides[key.strip()] = value
    return Names(overrides)


def output_format(out: Optional[Path], fmt: Optional[str]) -> Optional[str]:
    check_output_file(out, "out", "table.md")
    if out is not None and fmt is None:
        fmt = FORMATS.get(out.suffix.lower())
        if fmt is None:
            raise UserError(f"{param('out', out)}: unknown suffix {out.suffix!r}; use .md, .csv, .json or .tex "
                            f"(or {param('fmt')})")
    if fmt not in (None, *FORMATS.values()):
        raise UserError(f"{param('fmt', fmt)}: choose md, csv, json or tex")
    return fmt


def load_tables(results_dir: Path, suite: Optional[str], stage: str, filters: Sequence[str],
                with_reference: bool, note: Callable[[str], None]):
    """The frame of every readable record (after `filters`) and its tables per suite and stage."""
    from ..data.suites import SUITES

    records, bad = load_records(results_dir)
    for path, reason in bad:
        note(f"warning: skipped {path}: {reason}")
    frame = records_frame(records)
    chosen = parse_filters(list(filters), frame)
    tasks = chosen.pop("task", None)
    frame = apply_filters(frame, chosen)
    suites = [SUITES.get(suite)] if suite else [SUITES.get(n) for n in SUITES]
    stages = ("final", "tune") if stage == "all" else (stage,)
    tables = suite_tables(frame, suites, stages, tasks)
    if with_reference:
        for table in tables:
            if table.stage == "final":
                table.reference = load_reference(table.suite)
        if not tables:  # the published table alone
            tables = [SuiteTable(s.restricted(tasks), [], reference=load_reference(s.restricted(tasks)))
                      for s in suites]
        missing = [t.suite.name for t in tables if not t.reference and t.stage == "final"]
        if missing:
            note(f"note: no published rows for suite {', '.join(missing)} (suites/reference/<suite>.csv)")
        tables = [t for t in tables if t.rows or t.reference or t.failed]
    if not tables:
        others = sorted(set(frame["stage"].dropna()) - set(stages))
        hint = f"; there are {', '.join(others)}-stage records: add {param('stage', others[0])}" if others else ""
        raise UserError(f"no records under {results_dir}" + (f" for suite {suite}" if suite else "")
                        + (f" after {param('filters')}" if filters else "") + f" at stage {stage}{hint}")
    for table in tables:
        for failure in table.failed:
            note(f"failed run: {table.suite.name}: {failure}")
    return frame, tables


def build_report(results_dir: PathLike = "results", suite: Optional[str] = None, stage: str = "final",
                 fmt: Optional[str] = None, out: Optional[PathLike] = None, long: bool = False,
                 compare: Optional[str] = None, with_reference: bool = False, plot: Optional[PathLike] = None,
                 plot_delta: Optional[str] = None, plot_delta_out: PathLike = "delta.png",
                 filters: Sequence[str] = (), std: Optional[bool] = None, names: Sequence[str] = (),
                 latex_fit: str = "auto", latex_width: str = DEFAULT_WIDTH, footnotes: bool = True,
                 bib: Optional[PathLike] = None, efficiency: bool = False, diagnostic: Optional[str] = None,
                 say: Callable[[str], None] = print) -> Report:
    """The report `alore-bench report` prints or writes. `say` hears warnings and notes as they
    come (unreadable records, suites without published rows, failed runs); they are also in
    `Report.notes`. `footnotes` off leaves the notes out of .tex and .md tables. `diagnostic`
    "best-of-test" adds, after the last-epoch tables, the test-selected table of runs made with
    `test_every` (reporting/diagnostics.py); nothing else reads their test curves."""
    results_dir, out = as_path(results_dir), as_path(out)
    plot, plot_delta_out = as_path(plot), as_path(plot_delta_out)
    if not results_dir.is_dir():
        raise UserError(f"{param('results_dir', results_dir)}: no such folder; run `alore-bench run` first")
    fmt = output_format(out, fmt)
    if stage not in STAGES:
        raise UserError(f"{param('stage', stage)}: choose final, tune or all")
    if latex_fit not in FITS:
        raise UserError(f"{param('latex_fit', latex_fit)}: choose {', '.join(FITS)}")
    parse_width(latex_width)
    if diagnostic is not None and diagnostic not in DIAGNOSTICS:
        raise UserError(f"{param('diagnostic', diagnostic)}: choose {', '.join(DIAGNOSTICS)}")
    if diagnostic is not None and fmt == "tex":
        raise UserError(f"{param('diagnostic', diagnostic)} is not for papers: use {param('fmt', 'md')}, csv or json")
    bib = as_path(bib)
    check_input_file(bib, "bib", ".bib")
    bib_keys = read_bib_keys(bib)
    for name, figure in (("plot", plot), ("plot_delta_out", plot_delta_out)):
        # --plot-delta-out is checked even without --plot-delta: a bad value is a mistake either way.
        check_output_file(figure, name, "figure.png")
        if figure is not None and figure.suffix.lower() not in FIGURES:
            raise UserError(f"{param(name, figure)}: use a .png, .svg or .pdf file name")
    display = parse_names(names)
    notes: List[str] = []

    def note(line: str) -> None:
        notes.append(line)
        say(line)

    frame, tables = load_tables(results_dir, suite, stage, filters, with_reference, note)
    report = Report(tables, frame, display, fmt=fmt, std=std, notes=notes)
    if compare is not None:
        if len(tables) != 1:
            raise UserError(f"{param('compare')} needs one table: add {param('suite')} (and {param('stage')})")
        report.view, report.compare = "compare", compare_rows(tables[0], frame, compare)
        report.text = compare_text(report.compare, fmt) if fmt else None
    elif diagnostic is not None:
        report.view = "diagnostic"
        diagnostic_text = best_of_test_text(frame, fmt or "md")
        if fmt in (None, "md"):  # beside the last-epoch tables, as a separate table
            last_epoch = tables_text(tables, "md", std if std is not None else True, display, latex_fit, latex_width,
                                     footnotes, bib_keys, note)
            diagnostic_text = last_epoch + "\n" + diagnostic_text
        report.text = diagnostic_text
    elif efficiency:
        report.view = "efficiency"
        report.text = efficiency_text(tables, frame, display, fmt or "md")
    elif long:
        if fmt not in ("csv", "json"):
            raise UserError(f"{param('long', True)} writes the record frame as csv or json: add "
                            f"{param('fmt', 'csv')} or {param('out', 'FILE.csv')}")
        report.view = "long"
        report.text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=2) + "\n"
    elif fmt is not None:
        report.text = tables_text(tables, fmt, std if std is not None else fmt != "tex", display, latex_fit,
                                  latex_width, footnotes, bib_keys, note)
    if out is not None:
        atomic_write_text(out, report.text or "")
        report.written.append(out)
    write_figures(report, plot, plot_delta, plot_delta_out)
    return report


def write_figures(report: Report, plot: Optional[Path], plot_delta: Optional[str], plot_delta_out: Path) -> None:
    from .figures import plot_accuracy_vs_params
    from .figures import plot_delta as plot_deltas

    if plot is not None:
        plot_accuracy_vs_params([t for t in report.tables if t.rows or t.reference], plot, report.names)
        report.written.append(plot)
    if plot_delta is not None:
        plot_deltas([t for t in report.tables if t.rows], plot_delta, plot_delta_out, report.names)
        report.written.append(plot_delta_out)
