"""Reports against tables computed by hand from fixture records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alore_bench.cli import app
from alore_bench.data.suites import SUITES
from alore_bench.runs.record import RECORD_SCHEMA, load_records
from alore_bench.reporting import (MEAN_GROUPS, MEAN_TASKS, compare_rows, load_reference, records_frame, suite_table,
                                to_latex)

runner = CliRunner()
DEMO = SUITES.get("demo")
GROUP = {t.name: t.group for t in DEMO.tasks}


def write_record(root: Path, method: str, config: str, task: str, seed: int, top1: float, suite="demo",
                 backbone="demo_vit", status="ok", params=4160, error=None, group=None, method_config=None,
                 protocol=None, preset=None, stage="final", lr=1e-3, hparams="default", timing=None, memory=None,
                 inference=None, weights=None, mean=None, selection=None):
    path = root / suite / backbone / f"{method}-{config}" / task / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"schema": RECORD_SCHEMA, "status": status, "error": error, "suite": suite, "task": task,
              "group": group or GROUP.get(task), "backbone": backbone, "method": method, "seed": seed,
              "config_hash": config, "metrics": {"top1": top1} if status == "ok" else None,
              "params": {"trainable_without_head": params, "trainable": params + 100, "head": 100,
                         **(inference or {})},
              "config": {"method": method_config or {}, "preset": {"name": preset} if preset else None,
                         "train": {"stage": stage, "lr": lr, "epochs": 10}, "hparams": {"source": hparams}},
              "protocol": {"preset": {"name": protocol}} if protocol else {},
              "timing": timing or {}, "memory": memory or {}}
    if weights:  # the weights file's location (its release is known by the file's name)
        record["protocol"]["weights"] = {"kind": "npz", "location": f"/w/{weights}", "sha256": "0" * 64}
    if mean:
        record["protocol"]["normalisation"] = {"name": "imagenet", "mean": list(mean), "std": [0.229, 0.224, 0.225]}
    if selection:
        record["protocol"]["selection"] = selection
    path.write_text(json.dumps(record))
    return path


A = {"digits": (50, 60), "textures": (90, 92), "count_shapes": (40, 50), "locate_shape": (70, 80)}


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for task, values in A.items():
        for seed, value in zip((1, 2), values):
            write_record(root, "alore", "aaaa", task, seed, value)
            # Same method, another config: its own row, never averaged with the first.
            write_record(root, "alore", "bbbb", task, seed, value + 5)  # (top-1 stays a percentage)
    for task in ("digits", "textures", "count_shapes"):  # a missing task
        write_record(root, "lora", "cccc", task, 1, 70)
    for task, values in A.items():  # a missing seed: textures lacks seed 2
        for seed, value in zip((1, 2), values):
            if not (task == "textures" and seed == 2):
                write_record(root, "full", "dddd", task, seed, value)
    write_record(root, "linear", "eeee", "digits", 1, 0, status="failed", error="TrainingDiverged: loss became nan")
    (root / "demo" / "broken").mkdir(parents=True)
    (root / "demo" / "broken" / "seed9.json").write_text("{not json")
    return root


def table_rows(root: Path):
    records, bad = load_records(root)
    table = suite_table(records_frame(records), DEMO)
    return {row.key[1] + "@" + row.key[2]: row for row in table.rows}, table, bad


def test_means_spreads_and_both_conventions_by_hand(results):
    rows, _table, _bad = table_rows(results)
    a = rows["alore@aaaa"]
    assert not a.missing and a.seeds == [1, 2]
    assert a.cells["digits"].mean == 55 and math.isclose(a.cells["digits"].std, math.sqrt(50))
    assert a.cells["textures"].mean == 91 and math.isclose(a.cells["textures"].std, math.sqrt(2))
    structured = a.cells["Structured mean"]  # per seed: 55 and 65
    assert structured.mean == 60 and math.isclose(structured.std, math.sqrt(50)) and structured.n == 2
    groups = a.cells[MEAN_GROUPS]  # per seed: (50+90+55)/3 = 65 and (60+92+65)/3 = 72.33
    assert math.isclose(groups.mean, (65 + 217 / 3) / 2)
    assert math.isclose(groups.std, abs(217 / 3 - 65) / math.sqrt(2))
    tasks = a.cells[MEAN_TASKS]  # per seed: 62.5 and 70.5: a different number than the groups' convention
    assert tasks.mean == 66.5 and math.isclose(tasks.std, 8 / math.sqrt(2))
    assert rows["alore@bbbb"].cells["digits"].mean == 60  # other config, other row


def test_missing_tasks_and_seeds_are_flagged_not_averaged(results):
    rows, _table, _bad = table_rows(results)
    lora = rows["lora@cccc"]
    assert lora.missing == ["locate_shape: no result"]
    assert "Structured mean" not in lora.cells and MEAN_GROUPS not in lora.cells and MEAN_TASKS not in lora.cells
    assert lora.cells["Natural mean"].mean == 70  # complete groups still get their mean
    full = rows["full@dddd"]
    assert full.missing == ["textures: seeds 2 missing"]
    assert "Specialized mean" not in full.cells and MEAN_GROUPS not in full.cells
    assert full.cells["Structured mean"].mean == 60


def md_line(out: str, start: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(start))


def test_report_markdown_marks_gaps_and_lists_failures_and_bad_files(results):
    result = runner.invoke(app, ["report", "--results-dir", str(results), "--format", "md"])
    assert result.exit_code == 0, result.output
    out = result.output
    # Display names from the registries; the settings column is empty when no setting differs.
    assert md_line(out, "| Demo ViT | LoRA * |").startswith(
        "| Demo ViT | LoRA * | — | 70.0 | 70.0 | 70.0 | 70.0 | 70.0 | — | — | — | — | 0.0042 | 0.0043 | — | 1 | cccc |")
    assert "* demo_vit/lora@cccc incomplete: locate_shape: no result" in out
    assert md_line(out, "| Demo ViT | ALoRE | — | 55.0 ± 7.1 |").endswith("| aaaa |")
    # Failed runs are written under the table, not only printed on stderr.
    assert "- failed run: digits demo_vit linear@eeee seed 1: TrainingDiverged: loss became nan" in out
    assert "warning: skipped" in out and "broken/seed9.json" in out


def test_latex_from_styler_booktabs_best_bold_second_underlined(results):
    _rows, table, _bad = table_rows(results)
    tex = to_latex(table)
    assert r"\begin{table*}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"\resizebox" not in tex and r"\caption{demo, Demo ViT: top-1 accuracy" in tex
    assert r"\multicolumn{3}{c}{Structured}" in tex
    lines = [l.rstrip(" \\").split(" & ") for l in tex.splitlines() if l.startswith(("ALoRE", "LoRA", "Full"))]
    by_label = {(l[0], l[1]): l for l in lines}  # (method, params) is not unique: find rows by digits value
    digits = {l[0] + "|" + l[2]: l for l in lines}
    # digits column: lora 70 best, alore@bbbb 60 second, alore@aaaa 55 neither.
    assert digits[r"LoRA$^{*}$|\textbf{70.0}"]
    assert digits[r"ALoRE|\underline{60.0}"]
    assert digits["ALoRE|55.0"]
    assert digits[r"LoRA$^{*}$|\textbf{70.0}"][8] == "--"  # no Structured mean for an incomplete row
    assert by_label and r"\$^{*}$" not in tex
    # The footnote explains the marks it shows, naming rows as the table does (never by hash).
    assert r"$^{*}$ LoRA (config=cccc) is incomplete: locate\_shape" in tex or "LoRA" in tex.split(r"\parbox")[1]
    assert "failed run" not in tex  # failed runs are in the other formats, not under a paper's table


def test_out_suffix_picks_format_and_long_form(results, tmp_path):
    import pandas as pd

    for suffix, needle in ((".md", "| Backbone |"), (".tex", r"\toprule"), (".csv", "suite,stage,kind,backbone"),
                           (".json", '"demo"')):
        out = tmp_path / f"table{suffix}"
        result = runner.invoke(app, ["report", "--results-dir", str(results), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert needle in out.read_text()
    frame = pd.read_csv(tmp_path / "table.csv")
    assert all(c == c.lower() and " " not in c for c in frame.columns)  # snake_case
    cells = frame[(frame["kind"] == "task") & (frame["config"] == "aaaa")]
    assert len(cells) == 4 and set(cells["n"]) == {2}
    import csv

    counts = [row["n"] for row in csv.DictReader((tmp_path / "table.csv").open())]
    assert all(c.isdigit() or c == "" for c in counts)  # counts as integers, not 2.0
    means = [row["top1_mean"] for row in csv.DictReader((tmp_path / "table.csv").open()) if row["top1_mean"]]
    assert all(len(m.partition(".")[2]) <= 2 for m in means)  # rounded, never 28.000000000000004
    assert (frame["kind"] == "failed").sum() == 1 and (frame["kind"] == "missing").sum() == 2
    document = json.loads((tmp_path / "table.json").read_text())
    assert document["demo"]["final"]["failed"] and len(document["demo"]["final"]["rows"]) == 4
    out = tmp_path / "long.csv"
    assert runner.invoke(app, ["report", "--results-dir", str(results), "--long", "--out", str(out)]).exit_code == 0
    lines = out.read_text().strip().splitlines()
    assert lines[0].startswith("suite,task,group,backbone,method,config,seed,status,top1")
    assert len(lines) == 1 + 8 + 8 + 3 + 7 + 1  # one row per readable record


def test_filter(results):
    result = runner.invoke(app, ["report", "--results-dir", str(results), "--format", "md", "--filter", "method=lora"])
    assert result.exit_code == 0 and "LoRA" in result.output and "ALoRE" not in result.output
    bad = runner.invoke(app, ["report", "--results-dir", str(results), "--filter", "colour=red"])
    assert bad.exit_code == 2 and "unknown filter key 'colour' for --filter" in bad.output
    typo = runner.invoke(app, ["report", "--results-dir", str(results), "--filter", "metod=lora"])
    assert "did you mean 'method'" in typo.output
    prefix = runner.invoke(app, ["report", "--results-dir", str(results), "--format", "md", "--filter", "config=bb"])
    assert "bbbb" in prefix.output and "aaaa" not in prefix.output


def test_compare_paired_and_per_task(results):
    records, _ = load_records(results)
    frame = records_frame(records)
    table = suite_table(frame, DEMO)
    result = compare_rows(table, frame, "alore@bbbb:alore@aaaa")
    assert result["tasks"] == 4 and result["mean_difference"] == 5
    assert result["wilcoxon"]["rank_biserial"] == 1.0  # every task favours bbbb
    digits = next(e for e in result["per_task"] if e["task"] == "digits")
    # x = 55, 65 and y = 50, 60: t = 5 / sqrt(50/2 + 50/2) = 1/sqrt(2); Hedges g = 5/sqrt(50) * (1 - 3/7)
    assert math.isclose(digits["welch_t"], 1 / math.sqrt(2))
    assert math.isclose(digits["hedges_g"], 5 / math.sqrt(50) * (1 - 3 / 7))
    lora = next(e for e in compare_rows(table, frame, "alore@aaaa:lora")["per_task"] if e["task"] == "digits")
    assert lora["welch_t"] is None  # lora has one seed: no t-test
    with pytest.raises(Exception, match="matches several rows"):
        compare_rows(table, frame, "alore:lora")


def test_plot_writes_an_image(results, tmp_path):
    out = tmp_path / "fig.png"
    result = runner.invoke(app, ["report", "--results-dir", str(results), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_rows_and_delta(tmp_path):
    vtab = SUITES.get("vtab1k")
    reference = {r["method"]: r for r in load_reference(vtab)}
    lora = reference["lora"]
    # Means computed from the per-task numbers equal the ones the source prints (NOAH: 73.25).
    assert round(reference["noah"]["cells"]["Mean (tasks)"].mean, 2) == 73.25
    # LoRA as published: group means 556.4/7, 338.2/4 and 478.2/8.
    assert math.isclose(lora["cells"][MEAN_GROUPS].mean, (556.4 / 7 + 338.2 / 4 + 478.2 / 8) / 3)
    root = tmp_path / "results"
    noah = {"rank": 8, "alpha": 8.0, "targets": "qkv", "sites": "attn", "dropout": 0.1}
    full = reference["full"]
    for task in vtab.tasks:
        # VPT's full fine-tuning row: its protocol, ImageNet mean/std, the original file, the last epoch.
        write_record(root, "full", "aaaa", task.name, 42, full["cells"][task.name].mean + 0.5, suite="vtab1k",
                     backbone="vit_b16", group=task.group, params=85_800_000, protocol="vpt",
                     weights="ViT-B_16.npz", mean=(0.485, 0.456, 0.406), selection="last_epoch")
        # LoRA as NOAH trained it, but NOAH reported the best test epoch: no delta, the reason says why.
        write_record(root, "lora", "ffff", task.name, 42, lora["cells"][task.name].mean + 1.0, suite="vtab1k",
                     backbone="vit_b16", group=task.group, params=294912, method_config=noah, protocol="noah",
                     weights="ViT-B_16.npz")
        # The LoRA paper's q,v variant: same budget, another configuration than the published row.
        write_record(root, "lora", "eeee", task.name, 42, min(lora["cells"][task.name].mean + 2.0, 100.0), suite="vtab1k",
                     backbone="vit_b16", group=task.group, params=294912, method_config={**noah, "targets": "q,v"},
                     protocol="vpt")
    result = runner.invoke(app, ["report", "--results-dir", str(root), "--format", "md", "--with-reference"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert next(l for l in lines if l.startswith("| ViT-B/16 | Full fine-tuning |")).endswith("| aaaa | +0.5 |")
    row = next(l for l in lines if l.startswith("| ViT-B/16 | LoRA | protocol=noah,") and "opt.targets=qkv |" in l)
    assert row.endswith("| ffff | n/c |") and "+1.0" not in row
    assert "n/c vit_b16/lora@ffff: not comparable with its reference row: selection last epoch (published row: best test " \
           "epoch)" in result.output
    other = next(l for l in lines if l.startswith("| ViT-B/16 | LoRA | protocol=vpt,") and "opt.targets=q,v |" in l)
    assert other.endswith("| eeee | n/c |") and "+2.0" not in other
    # Every difference is named: the option, the protocol, the unrecorded weights, the selection.
    assert "targets='q,v' (published: 'qkv'); protocol vpt (published row: noah); weights unrecorded " \
           "(published row: original); selection last epoch (published row: best test epoch)" in result.output
    assert "WARNING: rows of different protocols share this table (noah, vpt)" in result.output
    assert "LoRA [ref]" in result.output and "V-PETL Bench" in result.output
    assert "Mean (groups) = mean of the group means" in result.output  # VTAB-1k's groups: explained


def test_fgvc_reference_rows_match_their_source_and_give_deltas_only_where_comparable(tmp_path):
    import csv
    from importlib import resources

    fgvc = SUITES.get("fgvc")
    reference = {r["method"]: r for r in load_reference(fgvc)}
    text = resources.files("alore_bench.suite_defs").joinpath("reference", "fgvc.csv").read_text(encoding="utf-8")
    for published in csv.DictReader(text.splitlines()):  # our means of its per-task numbers = its printed means
        assert round(reference[published["method"]]["cells"][MEAN_TASKS].mean, 2) == float(published["published_mean"])
    assert {"full", "linear", "vpt_deep", "ssf", "lora"} <= set(reference)
    root = tmp_path / "results"
    for task in fgvc.tasks:
        write_record(root, "ssf", "aaaa", task.name, 42, reference["ssf"]["cells"][task.name].mean - 0.5, suite="fgvc",
                     backbone="vit_b16", group="FGVC", params=205824, protocol="vpt", weights="ViT-B_16.npz")
        write_record(root, "lora", "bbbb", task.name, 42, 80.0, suite="fgvc", backbone="vit_b16", group="FGVC",
                     params=294912, method_config={"rank": 8, "targets": "qkv"}, protocol="vpt",
                     weights="ViT-B_16.npz")
    result = runner.invoke(app, ["report", "--results-dir", str(root), "--suite", "fgvc", "--format", "md",
                                 "--with-reference"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # V-PETL Bench's FGVC scripts keep the best test accuracy: no row of ours, evaluated at its last
    # epoch, gets a delta against them, and the footnote says so.
    assert next(l for l in lines if l.startswith("| ViT-B/16 | SSF |")).endswith("| aaaa | n/c |")
    assert "n/c vit_b16/ssf@aaaa: not comparable with its reference row: selection last epoch (published row: best test " \
           "epoch)" in result.output
    assert next(l for l in lines if l.startswith("| ViT-B/16 | LoRA |")).endswith("| bbbb | n/c |")
    assert "budget 0.295M (published row: 0.77M)" in result.output and "SSF [ref]" in result.output
    assert "Mean (groups)" not in result.output  # FGVC has one group: no such column, no such footnote


def test_data_setting_compares_rows_on_their_shared_tasks_only(tmp_path):
    root = tmp_path / "results"
    same = {task: {"train800val200": task[0] * 16, "test": task[0] * 16}
            for task in ("digits", "textures", "count_shapes")}
    for task in ("digits", "textures"):  # two rows over different tasks, same prepared data where shared
        write_record(root, "alore", "aaaa", task, 1, 50, protocol="vpt")
    for task in ("textures", "count_shapes"):
        write_record(root, "lora", "bbbb", task, 1, 50, protocol="vpt")
    for path in root.rglob("seed1.json"):
        record = json.loads(path.read_text())
        record["protocol"]["data_fingerprint"] = same[record["task"]]
        path.write_text(json.dumps(record))
    rows, table, _ = table_rows(root)
    assert "data" not in table.varying  # textures, the only shared task, has the same data in both
    # A third row whose textures data differs: now data tells rows apart, named by that task alone.
    write_record(root, "full", "cccc", "textures", 1, 50, protocol="vpt")
    path = root / "demo" / "demo_vit" / "full-cccc" / "textures" / "seed1.json"
    record = json.loads(path.read_text())
    record["protocol"]["data_fingerprint"] = {"train800val200": "x" * 16, "test": "t" * 16}
    path.write_text(json.dumps(record))
    rows, table, _ = table_rows(root)
    assert "data" in table.varying
    assert rows["alore@aaaa"].settings["data"] == rows["lora@bbbb"].settings["data"]
    assert rows["full@cccc"].settings["data"] != rows["alore@aaaa"].settings["data"]
