"""Reports: records -> frames (frame.py) -> tables (tables.py) -> text (render.py), published rows
(reference.py), paired comparisons (compare.py), figures (figures.py), efficiency (efficiency.py)."""

from .compare import compare_rows, compare_text, find_row
from .efficiency import efficiency_frame, efficiency_text
from .figures import plot_accuracy_vs_params, plot_delta
from .frame import ROW_KEYS, SETTINGS, apply_filters, parse_filters, records_frame
from .reference import comparability, load_reference, reference_deltas
from .render import (PARAMS, PARAMS_HEAD, PROTOCOL, Names, display_rows, fmt_params, footnotes,
                     tables_text, to_csv, to_json, to_latex, to_markdown)
from .tables import MEAN_GROUPS, MEAN_TASKS, Cell, Row, SuiteTable, overall_column, suite_table, suite_tables

__all__ = [
    "MEAN_GROUPS", "MEAN_TASKS", "PARAMS", "PARAMS_HEAD", "PROTOCOL", "ROW_KEYS", "SETTINGS", "Cell", "Names", "Row",
    "SuiteTable", "apply_filters", "comparability", "compare_rows", "compare_text", "display_rows", "efficiency_frame",
    "efficiency_text", "find_row", "fmt_params", "footnotes", "load_reference", "overall_column",
    "parse_filters", "plot_accuracy_vs_params", "plot_delta", "records_frame", "reference_deltas",
    "suite_table", "suite_tables", "tables_text", "to_csv", "to_json", "to_latex", "to_markdown",
]
