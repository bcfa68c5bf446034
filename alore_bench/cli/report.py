"""`alore-bench report`: parse, call api.report, render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from . import render
from .options import LatexFit, ReportFormat, ReportStage, ResultsDir, value


def report(
    results_dir: ResultsDir = Path("results"),
    suite: Annotated[Optional[str], typer.Option("--suite", help="only this suite")] = None,
    stage: Annotated[ReportStage, typer.Option("--stage", help=(
        "final (test; default), tune (validation, grid points) or all"))] = ReportStage.final,
    fmt: Annotated[Optional[ReportFormat], typer.Option("--format", help=(
        "md, csv, json or tex (default: a terminal table)"))] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help=(
        "write to this file; .md, .csv, .json or .tex picks the format"))] = None,
    long: Annotated[bool, typer.Option("--long", help=(
        "the record frame (one row per record) instead of the table"))] = False,
    compare: Annotated[Optional[str], typer.Option("--compare", help=(
        "A:B, e.g. alore:lora or vit_b16/alore@3f2a:full"))] = None,
    with_reference: Annotated[bool, typer.Option("--with-reference", help=(
        "add published rows and a delta column"))] = False,
    plot: Annotated[Optional[Path], typer.Option("--plot", help=(
        "accuracy-vs-parameters figure (.png, .svg or .pdf)"))] = None,
    plot_delta: Annotated[Optional[str], typer.Option("--plot-delta", help=(
        "METHOD: per-group bars of every row minus METHOD's row, into --plot-delta-out (default delta.png)"))] = None,
    plot_delta_out: Annotated[Path, typer.Option("--plot-delta-out", help="the --plot-delta figure")] = Path("delta.png"),
    filters: Annotated[Optional[List[str]], typer.Option("--filter", metavar="KEY=VALUE", help=(
        "key=VALUE[,VALUE] (repeatable): backbone, method, suite, task, seed, config (hash prefix), stage, lr, "
        "weight_decay, epochs, hparams, protocol, data_source, weights, preset, variant, opt.<option>"))] = None,
    std: Annotated[Optional[bool], typer.Option("--std/--no-std", help=(
        "± std over seeds in the cells (default: on; LaTeX: off unless --std)"))] = None,
    names: Annotated[Optional[List[str]], typer.Option("--name", metavar="NAME=TEXT", help=(
        'display name: method_or_backbone=TEXT (repeatable), e.g. --name lora="LoRA~\\cite{hu2022lora}"'))] = None,
    latex_fit: Annotated[LatexFit, typer.Option("--latex-fit", help=(
        "auto (default: the first of split, rotate and a landscape page that takes at most two tabulars), "
        "split (the columns over stacked tabulars that fit --latex-width), rotate (headers turned, then split), "
        "landscape (a sidewaystable page, then split) or none (one tabular, as wide as it is); never shrunk "
        "below \\footnotesize"))] = LatexFit.auto,
    latex_width: Annotated[str, typer.Option("--latex-width", help=(
        "the text width LaTeX tables are split to fit, e.g. 5.5in (NeurIPS, ICML), 6.875in (CVPR table*, the "
        "default) or 17cm"))] = "6.875in",
    notes: Annotated[bool, typer.Option("--notes/--no-notes", help=(
        "footnotes under .tex and .md tables (what the columns and marks mean, published rows' sources)"))] = True,
    bib: Annotated[Optional[Path], typer.Option("--bib", help=(
        "a .bib file: published rows cite their keys with \\cite (each key must be in it); without it, "
        "citations are plain text"))] = None,
    efficiency: Annotated[bool, typer.Option("--efficiency", help=(
        "the efficiency table: params, time, memory"))] = False,
    diagnostic: Annotated[Optional[str], typer.Option("--diagnostic", help=(
        "best-of-test: after the last-epoch tables, a separate test-selected table (not valid for claims) of runs "
        "made with --test-every, with the per-task difference"))] = None,
    wide: Annotated[bool, typer.Option("--wide", help=(
        "the terminal table with every column (default: fitted to the terminal's width, saying what it left "
        "out; files always get every column)"))] = False,
):
    """Paper-style tables (mean ± std over seeds, group means, both averaging conventions) from the
    records: one table per suite and stage, rows told apart by the settings that differ."""
    from ..api import report as report_api

    result = report_api(results_dir, suite=suite, stage=value(stage), fmt=value(fmt), out=out, long=long,
                        compare=compare, with_reference=with_reference, plot=plot, plot_delta=plot_delta,
                        plot_delta_out=plot_delta_out, filters=filters or [], std=std, names=names or [],
                        latex_fit=value(latex_fit), latex_width=latex_width, footnotes=notes, bib=bib,
                        efficiency=efficiency, diagnostic=diagnostic, say=render.say)
    figures = [p for p in result.written if p != out]
    if out is None:
        if result.view == "compare" and result.fmt is None:
            render.console.print(render.compare_table(result.compare))
        elif result.view == "efficiency" and result.fmt is None:
            render.console.print(result.text, highlight=False, markup=False)
        elif result.text is not None:
            sys.stdout.write(result.text)
        else:
            render.tables(result.tables, result.std, result.names, wide)
    else:
        render.say(f"wrote {out}")
    for figure in figures:
        render.say(f"wrote {figure}")
