"""Reports researchers paste unchanged: stages in separate tables, the settings that differ as a
column, filters on any setting, partial means labelled, one well-formed file for several suites,
comparisons written in every format, per-task budgets, paper-ready LaTeX, efficiency, figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.suites import SUITES

from .test_tables import write_record

runner = CliRunner()
DEMO_TASKS = {"digits": (50, 60), "textures": (90, 92), "count_shapes": (40, 50), "locate_shape": (70, 80)}


def report(root: Path, *args: str):
    return runner.invoke(app, ["report", "--results-dir", str(root), *args])


@pytest.fixture
def staged(tmp_path):
    """ALoRE: a final configuration (tuned lr) and two tuning grid points, plus LoRA's final row."""
    root = tmp_path / "results"
    for task, values in DEMO_TASKS.items():
        for seed, value in zip((1, 2), values):
            write_record(root, "alore", "fin1", task, seed, value, lr=1e-3 if task == "digits" else 1e-2,
                         hparams="tuned", method_config={"experts": 4, "rank": 2})
            write_record(root, "lora", "lor1", task, seed, value - 5, method_config={"rank": 8})
        write_record(root, "alore", "tun1", task, 1, values[0] - 1, stage="tune", lr=1e-3,
                     method_config={"experts": 4, "rank": 2})
        write_record(root, "alore", "tun2", task, 1, values[0] + 1, stage="tune", lr=1e-2,
                     method_config={"experts": 8, "rank": 2})
    return root


def test_tuning_and_test_records_give_separate_tables_with_their_settings(staged):
    final = report(staged, "--format", "md")
    assert final.exit_code == 0, final.output
    assert "tun1" not in final.output and "tun2" not in final.output and "fin1" in final.output
    # What tells the final rows apart: lr (tuned per task for ALoRE) and where it came from; method
    # options only between rows of one method (LoRA has no `experts` to differ in).
    assert "| Demo ViT | ALoRE | lr=tuned, hparams=tuned |" in final.output
    assert "| Demo ViT | LoRA | lr=0.001, hparams=default |" in final.output
    tune = report(staged, "--format", "md", "--stage", "tune")
    assert "**demo, validation (tuning stage)**" in tune.output and "fin1" not in tune.output
    assert "| Demo ViT | ALoRE | lr=0.001, opt.experts=4 |" in tune.output
    assert "| Demo ViT | ALoRE | lr=0.01, opt.experts=8 |" in tune.output
    both = report(staged, "--format", "json", "--stage", "all")
    document = json.loads(both.output)
    assert set(document["demo"]) == {"final", "tune"} and len(document["demo"]["tune"]["rows"]) == 2
    assert document["demo"]["tune"]["varying_settings"] == ["lr", "opt.experts"]


@pytest.mark.parametrize("filters, shown, hidden", [
    (["stage=tune", "lr=1e-3"], ["tun1"], ["tun2", "fin1"]),
    (["stage=tune", "opt.experts=8"], ["tun2"], ["tun1"]),
    (["config=fi"], ["fin1"], ["lor1"]),
    (["hparams=tuned"], ["fin1"], ["lor1"]),
])
def test_filters_work_on_any_setting(staged, filters, shown, hidden):
    args = [a for f in filters for a in ("--filter", f)]
    stage = ["--stage", "tune"] if "stage=tune" in filters else []
    result = report(staged, "--format", "md", *args, *stage)
    assert result.exit_code == 0, result.output
    assert all(s in result.output for s in shown) and not any(h in result.output for h in hidden)


def test_a_task_filter_shows_a_labelled_partial_mean_not_an_incomplete_row(staged):
    result = report(staged, "--format", "md", "--filter", "task=digits,textures")
    assert result.exit_code == 0, result.output
    assert "Mean (tasks) [2 of 4 tasks]" in result.output and " * |" not in result.output
    assert "incomplete" not in result.output and "Partial: only 2 of the suite's 4 tasks" in result.output
    alore = next(l for l in result.output.splitlines() if l.startswith("| Demo ViT | ALoRE |"))
    assert "| 73.0 ± 4.2 |" in alore  # per seed (50 + 90) / 2 = 70 and (60 + 92) / 2 = 76


def test_several_suites_make_one_well_formed_file_per_format(staged, tmp_path):
    vtab = SUITES.get("vtab1k")
    for task in vtab.tasks[:3]:
        write_record(staged, "alore", "vt01", task.name, 42, 70.0, suite="vtab1k", backbone="vit_b16",
                     group=task.group, params=150000)
    for suffix in ("json", "csv", "md", "tex"):
        out = tmp_path / f"all.{suffix}"
        assert report(staged, "--out", str(out)).exit_code == 0
    document = json.loads((tmp_path / "all.json").read_text())  # one document, keyed by suite and stage
    assert set(document) == {"demo", "vtab1k"} and document["vtab1k"]["final"]["rows"][0]["complete"] is False
    frame = pd.read_csv(tmp_path / "all.csv")  # one header, long form
    assert set(frame["suite"]) == {"demo", "vtab1k"} and list(frame.columns).count("suite") == 1
    assert (tmp_path / "all.md").read_text().count("| Backbone |") == 2
    assert (tmp_path / "all.tex").read_text().count(r"\begin{table*}") == 2


@pytest.mark.parametrize("suffix", ["md", "tex", "csv", "json"])
def test_compare_writes_what_it_prints_in_every_format(staged, tmp_path, suffix):
    out = tmp_path / f"cmp.{suffix}"
    result = report(staged, "--compare", "alore:lora", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.strip() and "digits" in text
    if suffix == "json":
        assert json.loads(text)["mean_difference"] == 5.0
    if suffix == "csv":
        assert len(pd.read_csv(out)) == 4


def test_per_task_budgets_give_the_mean_and_the_per_task_values(tmp_path):
    root = tmp_path / "results"
    budgets = {"digits": 10000, "textures": 30000, "count_shapes": 50000, "locate_shape": 70000}
    for task, params in budgets.items():
        write_record(root, "vpt_deep", "vp01", task, 1, 60.0, params=params)
    result = report(root, "--format", "json")
    row = json.loads(result.output)["demo"]["final"]["rows"][0]
    assert row["params_m"] == 0.04 and row["params_per_task_m"] == {t: p / 1e6 for t, p in budgets.items()}
    assert row["params_with_head_m"] == 0.0401
    csv = pd.read_csv(pd.io.common.StringIO(report(root, "--format", "csv").output))
    per_task = csv[csv["kind"] == "task"].set_index("column")["params_m"].to_dict()
    assert per_task == {t: p / 1e6 for t, p in budgets.items()}


SIZES = [r"\tiny", r"\scriptsize", r"\footnotesize", r"\small", r"\normalsize"]


def sizes_of(tex: str):
    """(body size, notes size) of one table, read from its font commands; a scaled table fails."""
    assert r"\resizebox" not in tex and r"\scalebox" not in tex, "a table shrunk to fit"
    body, _, notes = tex.partition(r"\parbox")
    body_size = [s for s in SIZES if s in body.split(r"\caption")[0]]
    notes_size = [s for s in SIZES if s in notes]
    assert len(body_size) == 1, body_size
    return SIZES.index(body_size[0]), SIZES.index(notes_size[0]) if notes_size else None


def vtab_records(root: Path):
    for task in SUITES.get("vtab1k").tasks:
        for seed, shift in ((42, 0.0), (44, 1.0)):
            write_record(root, "lora", "lo01", task.name, seed, 70.0 + shift, suite="vtab1k", backbone="vit_b16",
                         group=task.group, params=294912, protocol="vpt")
            write_record(root, "alore", "al01", task.name, seed, 72.0 + shift, suite="vtab1k", backbone="vit_b16",
                         group=task.group, params=150000, protocol="vpt", method_config={"scale": 10.0})


def test_latex_is_paper_ready(tmp_path):
    root = tmp_path / "results"
    vtab_records(root)
    result = report(root, "--format", "tex", "--with-reference", "--name", "alore=ALoRE~\\cite{du2024alore}")
    assert result.exit_code == 0, result.output
    tex = result.output
    body, notes = sizes_of(tex)
    assert body >= SIZES.index(r"\footnotesize") and notes <= body  # readable, and never smaller than its notes
    assert tex.startswith("% alore-bench table: needs \\usepackage{booktabs")  # the preamble it needs
    assert r"\caption{VTAB-1k, ViT-B/16: top-1 accuracy (\%) on the test split, mean over 2 seeds; protocol vpt" in tex
    assert r"ALoRE~\cite{du2024alore}" in tex and "\nLoRA &" in tex  # user LaTeX kept, registry name escaped
    # Published rows: plain-text sources in the notes, no \cite keys that would print as [?].
    assert r"\cite{jia2022vpt}" not in tex and r"Full fine-tuning$^{\mathrm{R1}}$" in tex
    assert "R1--R4 from Jia et al. 2022 (VPT)" in tex
    assert r"\multicolumn{8}{c}{Natural}" in tex and r"\multicolumn{5}{c}{Specialized}" in tex  # tasks + group mean
    lines = tex.splitlines()
    first_reference = next(i for i, l in enumerate(lines) if l.startswith("Full fine-tuning"))
    assert lines[first_reference - 1] == r"\midrule"  # published rows below their own rule
    assert "& 0.15 &" in tex and "& 0.29 &" in tex  # params as papers print them
    assert tex.count(r"\begin{tabular}") <= 2  # split over at most two tabulars, or a landscape page
    assert "lo01" not in tex and "al01" not in tex  # no configuration hashes
    assert "+head" not in tex and "failed run" not in tex and "WARNING" not in tex  # notes of what is shown only
    assert "`qkv'" in tex  # TeX quotes
    # With std: a subscript beside each mean, and the caption says so. With every published row and
    # its notes, no layout fits one page: the table is still written, and a line says what to leave out.
    std = report(root, "--format", "tex", "--with-reference", "--std")
    assert r"72.5$_{\pm0.7}$" in std.output and r"mean $\pm$ std over 2 seeds" in std.output
    assert "--no-notes" in std.output.splitlines()[0] and "taller than a page" in std.output.splitlines()[0]
    assert "taller" not in report(root, "--format", "tex", "--with-reference", "--std", "--no-notes").output
    rotated = report(root, "--format", "tex", "--latex-fit", "rotate").output
    assert r"\rotatebox{90}{CIFAR-100}" in rotated and "graphicx" in rotated.splitlines()[0]
    landscape = report(root, "--format", "tex", "--latex-fit", "landscape").output
    assert r"\begin{sidewaystable}" in landscape and "rotating" in landscape.splitlines()[0]
    assert report(root, "--format", "tex", "--latex-fit", "none").output.count(r"\begin{tabular}") == 1
    narrow = report(root, "--format", "tex", "--latex-fit", "split", "--latex-width", "5.5in").output
    assert narrow.count(r"\begin{tabular}") > tex.count(r"\begin{tabular}")  # a narrower text takes more parts


def test_latex_citations_follow_the_bib_and_notes_can_be_left_out(tmp_path):
    root = tmp_path / "results"
    vtab_records(root)
    bib = tmp_path / "refs.bib"
    bib.write_text("@article{jia2022vpt,\n title={VPT}}\n@inproceedings{xin2024vpetl, title={V-PETL}}\n"
                   "@article{zhang2022noah, title={NOAH}}\n")
    cited = report(root, "--format", "tex", "--with-reference", "--bib", str(bib))
    assert cited.exit_code == 0, cited.output
    assert r"Full fine-tuning~\cite{jia2022vpt}" in cited.output
    bib.write_text("@article{jia2022vpt, title={VPT}}\n")
    missing = report(root, "--format", "tex", "--with-reference", "--bib", str(bib))
    assert missing.exit_code == 2 and "xin2024vpetl" in missing.output and "--bib" in missing.output
    bare = report(root, "--format", "tex", "--with-reference", "--no-notes").output
    assert r"\parbox" not in bare and "(Jia et al. 2022)" in bare and "R1" not in bare
    assert "- " not in report(root, "--format", "md", "--no-notes").output.split("|")[-1]


def test_the_demo_caption_and_single_task_groups(tmp_path):
    root = tmp_path / "results"
    for task, (value, _) in DEMO_TASKS.items():
        write_record(root, "alore", "al01", task, 42, value, protocol="native")
        write_record(root, "linear", "li01", task, 42, value - 3, protocol="native", params=0)
    tex = report(root, "--format", "tex").output
    body, notes = sizes_of(tex)
    assert notes <= body
    assert r"\caption{demo, Demo ViT: top-1 accuracy (\%) on the test split, 1 seed; protocol native." in tex
    assert "seed(s)" not in tex
    # Natural and Specialized hold one task each: no mean column repeats it.
    header = next(line for line in tex.splitlines() if line.startswith("Method &"))
    assert header.count("Mean") == 1 and r"\multicolumn{3}{c}{Structured}" in tex  # Structured's own mean only


def test_latex_escapes_every_special_character(tmp_path):
    root = tmp_path / "results"
    for variant, value in (("a_b$c{d}~e^f&g%h#i", 60.0), ("plain", 61.0)):
        path = write_record(root, "lora", variant[:4].replace("$", "x"), "digits", 1, value)
        record = json.loads(path.read_text())
        record["variant"] = variant
        path.write_text(json.dumps(record))
    tex = report(root, "--format", "tex", "--filter", "task=digits").output
    assert r"a\_b\$c\{d\}\textasciitilde{}e\textasciicircum{}f\&g\%h\#i" in tex


def test_efficiency_table_from_the_records(tmp_path):
    root = tmp_path / "results"
    for task in DEMO_TASKS:
        write_record(root, "alore", "al01", task, 1, 60.0, params=20000, timing={"train_seconds": 12.0, "steps": 160},
                     memory={"peak_bytes": 2 * 2**30, "kind": "cuda_max_allocated"},
                     inference={"inference_total": 1000100, "backbone_total": 1000000})
        write_record(root, "vpt_deep", "vp01", task, 1, 58.0, params=50000, timing={"train_seconds": 20.0, "steps": 160},
                     memory={"peak_bytes": 3 * 2**30, "kind": "cuda_max_allocated"},
                     inference={"inference_total": 1050100, "backbone_total": 1000000})
    result = report(root, "--efficiency", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(pd.io.common.StringIO(result.output)).set_index("method")
    assert frame.loc["ALoRE", "extra_at_inference_m"] == 0 and frame.loc["VPT-Deep", "extra_at_inference_m"] == 0.05
    assert frame.loc["ALoRE", "train_s_run"] == 12.0 and frame.loc["VPT-Deep", "peak_memory_gb"] == 3.0
    assert "Peak memory" in report(root, "--efficiency").output


def test_figures_with_reference_rows_and_a_delta_chart(staged, tmp_path):
    scatter, delta = tmp_path / "fig.png", tmp_path / "delta.png"
    result = report(staged, "--plot", str(scatter), "--plot-delta", "lora", "--plot-delta-out", str(delta))
    assert result.exit_code == 0, result.output
    assert scatter.read_bytes()[:4] == delta.read_bytes()[:4] == b"\x89PNG"
    unknown = report(staged, "--plot-delta", "full", "--plot-delta-out", str(delta))
    assert unknown.exit_code == 2 and "has 0 rows of method full" in unknown.output


def test_published_table_without_records_of_ones_own(tmp_path):
    (tmp_path / "results").mkdir()
    result = report(tmp_path / "results", "--suite", "vtab1k", "--with-reference", "--format", "md")
    assert result.exit_code == 0, result.output
    assert "LoRA [ref]" in result.output and "VPT-Deep [ref]" in result.output
    demo = report(tmp_path / "results", "--suite", "demo", "--with-reference", "--format", "md")
    assert "no published rows for suite demo" in demo.output


def test_report_out_into_a_folder_is_a_one_line_error(staged, tmp_path):
    result = report(staged, "--out", str(tmp_path))
    assert result.exit_code == 2 and "is a folder" in result.output


def test_each_record_counts_once_and_non_finite_results_mark_their_row(tmp_path):
    root = tmp_path / "results"
    for task, values in DEMO_TASKS.items():
        for seed, value in zip((1, 2), values):
            write_record(root, "alore", "al01", task, seed, value)
            write_record(root, "lora", "lo01", task, seed, value)
            write_record(root, "full", "fu01", task, seed, value)
    folder = root / "demo" / "demo_vit"
    same = folder / "alore-al01" / "digits"
    (same / "seed1 (copy).json").write_text((same / "seed1.json").read_text())  # an identical copy
    other = folder / "lora-lo01" / "digits"
    changed = json.loads((other / "seed1.json").read_text())
    changed["metrics"]["top1"] = 99.0
    (other / "seed1 (copy).json").write_text(json.dumps(changed))  # a copy that disagrees
    nan = json.loads((folder / "full-fu01" / "textures" / "seed2.json").read_text())
    nan["metrics"]["top1"] = float("nan")
    (folder / "full-fu01" / "textures" / "seed2.json").write_text(json.dumps(nan))  # Python writes NaN
    result = report(root, "--format", "md")
    assert result.exit_code == 0, result.output
    out = result.output
    alore = md_row(out, "ALoRE")
    assert "| 55.0 ± 7.1 |" in alore and " * |" not in alore  # counted once: mean and std unchanged
    assert "duplicate: digits seed 1 of demo_vit/alore@al01: 2 identical copies counted once" in out
    assert "LoRA *" in out and "digits seed 1: 2 records disagree (50, 99)" in out
    assert "Full fine-tuning *" in out and "textures seed 2: non-finite top-1" in out


def md_row(out: str, method: str) -> str:
    return next(l for l in out.splitlines() if l.startswith(f"| Demo ViT | {method}"))


def test_precision_is_part_of_what_defines_a_row(tmp_path):
    root = tmp_path / "results"
    for task, values in DEMO_TASKS.items():
        for seed, value in zip((1, 2), values):
            path = write_record(root, "alore", "al01", task, seed, value + (0.5 if seed == 2 else 0.0))
            record = json.loads(path.read_text())
            record["protocol"]["precision"] = "bf16-autocast" if seed == 2 else "fp32"
            path.write_text(json.dumps(record))
    rows = json.loads(report(root, "--format", "json").output)["demo"]["final"]["rows"]
    assert sorted(r["settings"]["precision"] for r in rows) == ["bf16-autocast", "fp32"]
    assert all(r["seeds"] in ([1], [2]) for r in rows)


@pytest.mark.parametrize("field, value, reason", [
    ("seed", "42", "field 'seed'"), ("config", "lr=1", "field 'config'"), ("metrics", {"top1": "high"}, "metrics.top1"),
    ("metrics", {"top1": 4200.0}, "metrics.top1"), ("params", {"trainable_without_head": -5}, "params.trainable"),
    ("protocol", {"data_fingerprint": "abc"}, "data_fingerprint"), ("task", None, "field 'task'"),
    ("status", "great", "field 'status'"), ("config_hash", "beefbeef", "edited config_hash"),
    ("backbone", "vit_b16", "its fields put it at"),
])
def test_a_record_of_wrong_types_or_a_forged_hash_is_left_out_and_named(tmp_path, field, value, reason):
    root = tmp_path / "results"
    for task, (v, _) in DEMO_TASKS.items():
        write_record(root, "alore", "al01", task, 1, v)
    bad = write_record(root, "lora", "lo01", "digits", 1, 99.0)
    record = json.loads(bad.read_text())
    record[field] = value
    bad.write_text(json.dumps(record))
    result = report(root, "--format", "md")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert str(bad) in text and reason in text  # named: the file and what is wrong with it
    assert "| LoRA |" not in result.output and "| ALoRE |" in result.output  # left out, the others kept


def test_the_figure_keeps_its_title_says_only_what_it_draws_and_reads_small_budgets(tmp_path):
    from alore_bench.reporting import records_frame, suite_table
    from alore_bench.reporting.figures import accuracy_figure
    from alore_bench.reporting.reference import load_reference
    from alore_bench.runs.record import load_records

    root = tmp_path / "results"
    for task, (value, _) in DEMO_TASKS.items():
        for method, params in (("alore", 4200), ("lora", 8200), ("linear", 0), ("full", 210000)):
            write_record(root, method, method[:2] + "01", task, 42, value, params=params)
    table = suite_table(records_frame(load_records(root)[0]), SUITES.get("demo"))
    figure = accuracy_figure([table])
    figure.canvas.draw()
    ax = figure.axes[0]
    title = ax.title.get_window_extent()
    box = figure.bbox
    assert box.x0 <= title.x0 and title.x1 <= box.x1 and title.y1 <= box.y1  # not cut at the edge
    assert "Demo ViT" in ax.get_title() and "hollow" not in ax.get_title()
    assert ax.get_legend() is None  # one kind of marker: nothing to tell apart
    shown = [t.get_text() for t in ax.get_xticklabels() if ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert {"0", "0.004", "0.008"} <= set(shown) and len(shown) >= 5
    # With published rows beside ours, the legend names both kinds of marker, and only those.
    vtab = tmp_path / "vtab"
    vtab_records(vtab)
    frame = records_frame(load_records(vtab)[0])
    with_ref = suite_table(frame, SUITES.get("vtab1k"))
    with_ref.reference = load_reference(SUITES.get("vtab1k"))
    legend = accuracy_figure([with_ref]).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["ours", "published"]
