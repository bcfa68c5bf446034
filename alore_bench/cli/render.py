"""Everything the command line prints: the consoles, progress bars, and each result of the API as
a rich table or plain lines. Cells are plain text (never parsed as rich markup)."""

from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# Wide tables stay readable when output goes to a file or a pipe (rich assumes 80 columns there).
PIPE_WIDTH = 220
# No emoji codes: `cuda:x:` in a message must stay text.
console = Console(width=None if Console().is_terminal else PIPE_WIDTH, emoji=False)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else PIPE_WIDTH, emoji=False)


def _as_flags(line: str) -> str:
    """A core message with its fields (`errors.param`) read as this command line's flags."""
    from ..errors import render_fields
    from .options import flag_style

    return render_fields(line, flag_style)


def say(line: str) -> None:
    """A plain line on stderr (progress messages, notes)."""
    err_console.print(_as_flags(line), highlight=False, markup=False, soft_wrap=True)


def out(line: str) -> None:
    """A plain line on stdout (results)."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)


def progress_bar():
    """A bar on stderr in a terminal; off one, plain lines now and then (a bar there is noise, and
    its stop would print an empty line before a one-line error). See cli/progress.py."""
    from .progress import progress_bar as make

    return make(err_console)


def progress_say(progress):
    """Lines printed above a live progress bar."""
    return lambda line: progress.console.print(_as_flags(line), highlight=False, markup=False, soft_wrap=True)


def table(title: str, columns: Sequence[Any], rows: Iterable[Sequence[Any]], caption: str = "",
          whole_first: bool = False) -> Table:
    """A rich table of plain-text cells; `columns` are headers or (header, justify) pairs.
    `whole_first`: the first column is never cut or wrapped (names a user copies)."""
    rows = list(rows)
    out_table = Table(title=Text(title), caption=Text(caption) if caption else None, caption_justify="left")
    for index, column in enumerate(columns):
        header, justify = column if isinstance(column, tuple) else (column, "left")
        width = max([len(str(header))] + [len(str(row[0])) for row in rows]) if whole_first and index == 0 else None
        # A long word (a file name to download) folds onto the next line rather than losing its end.
        out_table.add_column(header, justify=justify, min_width=width, no_wrap=bool(width), overflow="fold")
    for row in rows:
        out_table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    return out_table


def text_table(data) -> Table:
    """A listing.TextTable."""
    return table(data.title, data.columns, data.rows, whole_first=True)


def terminal_width() -> int:
    """The width tables are fitted to: $COLUMNS when set (also in a pipe), else the console's."""
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else console.width


_WIDTHS = (console.width, err_console.width)


def fit_to_terminal() -> None:
    """Both consoles at $COLUMNS when it is set, else at their own widths (read at each command:
    the consoles outlive it, e.g. in tests)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        console.width = err_console.width = int(columns)
    else:
        console.width, err_console.width = _WIDTHS


# Columns the compact terminal view leaves out first: what no row tells apart, then the rest.
ALWAYS_OUT = ("+head (M)", "Config")
SAME_OUT = ("Backbone", "Protocol", "Seeds", "Settings")


def compact(suite_table, header: List[str], rows: List[List[str]], width: int):
    """(header, rows, note) of the terminal's compact view of a report table: single-task groups
    without their repeated mean; columns equal in every row, +head and Config left out (named in the
    note); per-task columns dropped, group means kept, when the table still exceeds `width`."""
    keep = list(range(len(header)))
    out: List[str] = []
    sizes = {g: sum(t.group == g for t in suite_table.suite.tasks) for g in suite_table.suite.groups}
    for index, name in enumerate(header):
        group = name[:-len(" mean")] if name.endswith(" mean") else None
        if group is not None and sizes.get(group) == 1:  # the mean of one task is that task
            keep.remove(index)
        elif name in ALWAYS_OUT:
            keep.remove(index)
            out.append(name)
        elif name in SAME_OUT and len({row[index] for row in rows}) == 1 and rows:
            keep.remove(index)
            out.append(f"{name} ({rows[0][index]} in every row)")
    # Tasks whose group mean stays in the table (groups of several tasks, in suites with groups).
    averaged = {suite_table.column_label(t.name) for t in suite_table.suite.tasks
                if len(sizes) > 1 and sizes[t.group] > 1}
    if _width(header, rows, keep) > width and averaged:
        dropped = [i for i in keep if header[i] in averaged]
        keep = [i for i in keep if i not in dropped]
        out.append(f"{len(dropped)} per-task columns (their group means stay)")
    note = (f"left out here: {'; '.join(out)} (`report --wide` shows every column, `--out FILE` writes them "
            "all)") if out else None
    return [header[i] for i in keep], [[row[i] for i in keep] for row in rows], note


def _width(header: List[str], rows: List[List[str]], keep: List[int]) -> int:
    """The width of a rich table with these columns (borders and padding included)."""
    return sum(max([len(header[i])] + [len(row[i]) for row in rows]) + 3 for i in keep) + 1


def suite_table(suite_table, std: bool = True, names=None, wide: bool = True, width: Optional[int] = None):
    """A report table (reporting.SuiteTable) for the terminal: every column (`wide`), or the
    compact view fitted to `width`, with a note of what it left out."""
    from ..reporting.render import display_rows, footnotes, title

    header, rows = display_rows(suite_table, std, names)
    note = None
    if not wide:
        header, rows, note = compact(suite_table, header, rows, width or terminal_width())
    groups = {suite_table.column_label(c): g for c, g in suite_table.columns()}
    columns = []
    for name in header:
        group = groups.get(name, "")
        label = Text(name)
        if group and not name.endswith("mean"):
            label.append(f"\n{group}", style="dim")
        columns.append((label, "left" if name in ("Backbone", "Method", "Settings") else "right"))
    caption = "\n".join(footnotes(suite_table) + ([note] if note else []))
    return table(f"{title(suite_table)}: Top-1 (%)", columns, rows, caption)


def run_summary(result) -> str:
    spec = result.specs[0]
    return f"{result.summary.line()} ({spec.method} on {spec.backbone}, suite {spec.suite})"


def selection_table(result) -> Table:
    """Per task: the selected grid point and its mean validation top-1 (from the tuning records)."""
    spec = result.specs[0]
    rows = []
    for chosen in result.selections:
        if chosen.point is None:
            rows.append([chosen.task, "—", "—", "0"])
        else:
            rows.append([chosen.task, ", ".join(f"{k}={v}" for k, v in chosen.point.items()), f"{chosen.val_top1:.2f}",
                         str(chosen.points)])
    return table(f"tuning {spec.method} on {spec.backbone}, suite {spec.suite}: selected points (mean validation "
                 "top-1 over tuning seeds; ties: smaller lr, then grid order)",
                 ["task", "selected", "val top-1", "points with records"], rows)


def compare_table(result) -> Table:
    wil = result["wilcoxon"]
    title = (f"{result['a']} vs {result['b']}: mean difference {result['mean_difference']:+.2f} over "
             f"{result['tasks']} tasks; Wilcoxon " + (f"p = {wil['p_value']:.3g}, rank-biserial r = "
                                                      f"{wil['rank_biserial']:+.2f}" if wil
                                                      else "not applicable (no difference)"))

    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    rows = [[e["task"], f"{e['a_mean']:.1f}", f"{e['b_mean']:.1f}", f"{e['a_seeds']}/{e['b_seeds']}",
             fmt(e["welch_t"], ".2f"), fmt(e["p_value"], ".3g"), fmt(e["hedges_g"], "+.2f")]
            for e in result["per_task"]]
    columns = [("task", "left")] + [(c, "right") for c in ("A", "B", "seeds A/B", "Welch t", "p", "Hedges g")]
    return table(title, columns, rows)


def study_plan_table(plan) -> Table:
    study = plan.study
    columns = [(c, "right" if c in ("grid points", "runs") else "left")
               for c in ("suite", "backbone", "variant", "stage", "grid points", "runs")]
    rows = [[r["suite"], r["backbone"], r["variant"], r["stage"], str(r["grid points"] or "—"), str(r["runs"])]
            for r in plan.rows]
    return table(f"study {study.name}: suites {', '.join(study.suite_names)}, seeds {list(study.seeds)}, "
                 f"tuning seeds {list(study.tuning_seeds)}, executor {study.executor.kind}", columns, rows)


def study_status_table(status, results_dir) -> Table:
    names = ("suite", "backbone", "variant", "stage", "runs", "done", "running", "failed", "pending", "train time")
    rows = [[r["suite"], r["backbone"], r["variant"], r["stage"], str(r["runs"]), str(r["done"]), str(r["running"]),
             str(r["failed"]), str(r["pending"]), f"{r['train_seconds']:.0f} s"] for r in status.rows]
    return table(f"study {status.study.name} in {results_dir}",
                 [(c, "left" if c in names[:4] else "right") for c in names], rows)


def bench_table(result, display_name: str, steps: int) -> Table:
    from ..costs import fmt

    settings = result["settings"]
    columns = [("method", "left")] + [(c, "right") for c in (
        "trainable (M)", "GFLOPs/img", "step (ms)", "x floor", "peak mem (GB)", "x floor ", "saved act. (MB)",
        "x floor  ", "latency (ms)", "x backbone", "merged (ms)", "x backbone ")]
    rows: List[List[str]] = []
    for row in result["rows"]:
        if row["error"]:
            rows.append([row["method"], row["error"], *[""] * (len(columns) - 2)])
            continue
        r = row["ratios"]
        peak = row["peak_bytes"] / 2**30 if row["peak_bytes"] is not None else None
        saved = row["saved_bytes"] / 2**20 if row["saved_bytes"] is not None else None
        rows.append([row["method"], fmt(row["trainable"] / 1e6, ".3f"), fmt(row["gflops"], ".2f"),
                     fmt(row["step_ms"], ".0f"), fmt(r["step_vs_floor"], ".2f"), fmt(peak, ".2f"),
                     fmt(r["memory_vs_floor"], ".2f"), fmt(saved, ".0f"), fmt(r["saved_vs_floor"], ".2f"),
                     fmt(row["infer_ms"], ".1f"), fmt(r["infer_vs_backbone"], ".2f"),
                     fmt(row["merged_ms"], ".1f"), fmt(r["merged_vs_backbone"], ".2f")])
    return table(f"{display_name}, batch {settings['batch_size']}, {result['machine']} (median of {steps}; ratios: "
                 "step and memory to the floor, latency to the backbone)", columns, rows)


def checks(results: Sequence[Any]) -> None:
    """`doctor`'s checks, one line each."""
    marks = {"ok": "[green]ok[/green]", "note": "[yellow]note[/yellow]", "problem": "[bold red]fix[/bold red]"}
    for check in results:
        console.print(f"{marks[check.status]:>8}  {escape(check.name)}: {escape(check.detail)}", highlight=False,
                      soft_wrap=True)


def validation(result) -> None:
    """`validate method`'s checks, one line each, and the count."""
    console.print(f"method {escape(result.name)}{escape(result.origin)}:", highlight=False)
    for check in result.results:
        mark = "[green]ok[/green]  " if check.ok else "[bold red]FAIL[/bold red]"
        console.print(f"  {mark} {escape(check.check)}: {escape(check.detail)}", highlight=False, soft_wrap=True)
    failed = [c for c in result.results if not c.ok]
    out(f"{len(result.results) - len(failed)} of {len(result.results)} checks passed")


def tables(items: Sequence[Any], std: Optional[bool] = None, names=None, wide: bool = False) -> None:
    """Report tables on the terminal: the compact view fitted to its width unless `wide`."""
    width = terminal_width()
    for item in items:
        console.print(suite_table(item, std is not False, names, wide, width), width=width)
