"""The `alore-bench` command line (Typer app at `alore_bench.cli:app`)."""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import UserError

# Plain (click) help: flags without a type label, choices as <a|b>, options as they are typed.
app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                  help="Benchmark parameter-efficient transfer learning (ALoRE and baselines) on VTAB-1k, FGVC and an offline demo suite.")
# Wide tables stay readable when output goes to a file or a pipe (rich assumes 80 columns there).
PIPE_WIDTH = 220
console = Console(width=None if Console().is_terminal else PIPE_WIDTH)
err_console = Console(stderr=True, width=None if Console(stderr=True).is_terminal else PIPE_WIDTH)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"alore-bench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="print the version and exit"),
                 plugins: Optional[List[Path]] = typer.Option(
                     None, "--plugins", metavar="FILE.py", help=(
                         "a local plugin module registering methods, backbones or suites (repeatable; also "
                         "$ALORE_BENCH_PLUGINS, separated by ':'); installed plugins load through entry points"))) -> None:
    """Benchmark parameter-efficient transfer learning (ALoRE and baselines) on VTAB-1k, FGVC and an offline demo suite."""
    if plugins:
        import os

        from .registry import PLUGINS_ENV

        # Through the environment, so worker processes load the same plugins.
        given = [str(p.resolve()) for p in plugins]
        os.environ[PLUGINS_ENV] = os.pathsep.join([*filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)),
                                                   *given])


def user_errors(command):
    """Print a UserError as one line and exit with code 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            # Escaped: messages name things like `[variants.alore]`, which rich would take for markup.
            err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=err_console, transient=True)


def _split_list(value: Optional[str], option: str = "--tasks") -> Optional[List[str]]:
    """`a,b` as a list without repeats; None when the option is absent; an empty list is a mistake
    (`--tasks ","` must not silently mean every task)."""
    if value is None:
        return None
    items = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if not items:
        raise UserError(f"{option} {value!r}: give at least one name, e.g. {option} a,b (leave {option} out for all)")
    return items


DataDir = typer.Option(None, "--data-dir", help="prepared data; default $ALORE_BENCH_DATA or ~/.cache/alore-bench/data")
ResultsDir = typer.Option(Path("results"), "--results-dir", help="where result records go")
# Options shared by `run` and `tune`.
MethodOpt = typer.Option(..., "--method", help="method name (see `alore-bench list methods`)")
BackboneOpt = typer.Option(..., "--backbone", help="backbone name (see `alore-bench list backbones`)")
SuiteOpt = typer.Option("vtab1k", "--suite")
TasksOpt = typer.Option(None, "--tasks", help="comma-separated tasks (default: the whole suite)")
EpochsOpt = typer.Option(None, "--epochs")
BatchSizeOpt = typer.Option(None, "--batch-size")
ProtocolOpt = typer.Option(None, "--protocol", metavar="<vpt|noah|native>", help=(
    "input pipeline as a unit: vpt (TFDS data, ImageNet mean/std, bilinear; vtab1k and fgvc default), "
    "noah (pre-made folders, ImageNet mean/std, bicubic) or native (the backbone's own)"))
DeviceOpt = typer.Option("auto", "--device", help="auto, cpu or cuda")
WeightsOpt = typer.Option(None, "--weights", help="pretrained weights file (or a folder holding the published file), "
                                                  "or `timm` for the equivalent timm hub tag")
WeightsDirOpt = typer.Option(None, "--weights-dir", help="folder of the published weight files, found by name "
                                                        "(default $ALORE_BENCH_WEIGHTS or <data dir>/weights)")
MethodOpts = typer.Option(None, "--opt", metavar="KEY=VALUE", help="method option key=value (repeatable)")
PresetOpt = typer.Option(None, "--preset", help="published per-task settings (see `alore-bench list presets`)")
# Where jobs run (run, tune, study run): they never change what a job computes.
ExecutorOpt = typer.Option(None, "--executor", metavar="<local|workers|ray>", help="local (default), workers or ray")
WorkersOpt = typer.Option(None, "--workers", help="worker processes (on CUDA each owns a device slot)")
PerDeviceOpt = typer.Option(None, "--per-device", help="runs packed onto one GPU (workers and ray)")
CpusOpt = typer.Option(None, "--cpus-per-job", help="ray: CPUs (torch threads) each job asks for (default 1)")
AddressOpt = typer.Option(None, "--address", help="ray: auto (the running cluster) or ray://host:port; "
                                                  "default: a local Ray instance")
CompileOpt = typer.Option(False, "--compile", help="torch.compile the model (recorded; mostly worth it on GPUs)")
CheckpointOpt = typer.Option(10, "--checkpoint-every", help=(
    "save a resumable checkpoint every N epochs (0: never); a killed run resumes from it with the same numbers"))
LogOpt = typer.Option(None, "--log", metavar="<tensorboard>", help="also write training curves: tensorboard (under <results>/tensorboard)")


@app.command("list")
@user_errors
def list_command(
    what: Optional[str] = typer.Argument(None, help="suites, methods, backbones or presets (default: all)"),
    match: str = typer.Option("*", "--match", help="only names matching this wildcard, e.g. 'peft:*'"),
    options: bool = typer.Option(False, "--options", help="with methods: each method's options, defaults and help"),
    backbone: str = typer.Option("vit_b16", "--backbone", help="with methods: the backbone the budgets are counted on"),
    data_dir: Optional[Path] = DataDir,
):
    """Show the registries as tables."""
    choices = ("suites", "methods", "backbones", "presets")
    if what is not None and what not in choices:
        from .errors import unknown_name_error
        raise unknown_name_error("registry", what, choices, "alore-bench list")
    for name in [what] if what else choices:
        tables = {"suites": suites_table, "methods": lambda m: methods_table(m, backbone),
                  "backbones": backbones_table, "presets": presets_table}
        from .registry import plugins_fingerprint

        key = f"list/{name}/{match}/{backbone if name == 'methods' else ''}/{plugins_fingerprint()}"
        table = cached_table(key, lambda: tables[name](match))
        if name == "backbones":
            table = with_weights_found(table, data_dir)
        console.print(table)
        if name == "methods" and options:
            console.print(cached_table(f"list/options/{match}/{plugins_fingerprint()}", lambda: method_options_table(match)))


def cached_table(key: str, build) -> Table:
    """A registry table from the code cache when this code built it before (no torch, timm or peft
    import: `list` stays fast), else built and cached."""
    from .code_cache import read_entries, write_entry

    data = read_entries().get(key)
    if not isinstance(data, dict):
        table = build()
        data = {"title": str(table.title or ""), "columns": [
            {"header": str(c.header), "justify": c.justify, "cells": [str(cell) for cell in c.cells]}
            for c in table.columns]}
        write_entry(key, data)
    table = Table(title=data["title"])
    for column in data["columns"]:
        table.add_column(column["header"], justify=column["justify"])
    for row in zip(*(column["cells"] for column in data["columns"])):
        table.add_row(*row)
    return table


def with_weights_found(table: Table, data_dir: Optional[Path]) -> Table:
    """The backbones table with the live facts: the weights folder and whether each file is in it."""
    from .data.cache import default_data_dir
    from .files import weights_folder

    folder = weights_folder(default_data_dir(data_dir))
    columns = {str(c.header): list(c.cells) for c in table.columns}
    found = ["yes" if str(f).startswith("(") or (folder / str(f)).is_file() else "no" for f in columns["weights file"]]
    out = Table(title=f"backbones (weights folder: {folder}; --weights-dir or $ALORE_BENCH_WEIGHTS to change it; "
                      "any timm model as timm:<name>)")
    for column in table.columns:
        out.add_column(column.header, justify=column.justify)
    out.add_column("found")
    for index, row in enumerate(zip(*columns.values())):
        out.add_row(*row, found[index])
    return out


def method_options_table(match: str) -> Table:
    import dataclasses

    from .config import field_help
    from .methods import METHODS

    table = Table(title="method options (--opt key=value)")
    for column in ("method", "option", "default", "help"):
        table.add_column(column)
    for name in METHODS.names(match):
        cls = METHODS.get(name).config_cls
        helps = field_help(cls)
        for f in dataclasses.fields(cls):
            table.add_row(name, f.name, repr(f.default), helps.get(f.name, ""))
    return table


def suites_table(match: str = "*") -> Table:
    from .data.suites import SUITES

    table = Table(title="suites")
    for column in ("suite", "tasks", "groups", "source", "description"):
        table.add_column(column)
    for name in SUITES.names(match):
        suite = SUITES.get(name)
        groups = ", ".join(f"{g} {sum(t.group == g for t in suite.tasks)}" for g in suite.groups)
        table.add_row(name, str(len(suite.tasks)), groups, suite.source, suite.description)
    return table


def methods_table(match: str = "*", backbone: str = "vit_b16") -> Table:
    from .backbones import BACKBONES
    from .methods import METHODS
    from .params import mean_head_parameters, trainable_without_head

    spec_b = BACKBONES.get(backbone)
    width = BACKBONES.get(backbone).create(num_classes=0, device="meta").num_features
    heads = {suite: mean_head_parameters(suite, width) for suite in ("vtab1k", "fgvc")}
    table = Table(title=f"methods (trainable parameters on {spec_b.display_name}, default options: without the head, "
                        f"and with the mean head of VTAB-1k ({heads['vtab1k']:,.0f}) and of FGVC ({heads['fgvc']:,.0f}))")
    for column in ("method", "trainable", "+head VTAB-1k", "+head FGVC", "mergeable", "paper", "summary"):
        table.add_column(column, justify="right" if column in ("trainable", "+head VTAB-1k", "+head FGVC") else "left")
    for name in METHODS.names(match):
        spec = METHODS.get(name)
        count = trainable_without_head(name, spec_b.name)
        if isinstance(count, str):  # the method does not apply to this family: the reason, once
            table.add_row(name, "n/a", "", "", "yes" if spec.mergeable else "no", spec.paper, escape(count[5:]))
            continue
        table.add_row(name, f"{count:,}", f"{count + heads['vtab1k']:,.0f}", f"{count + heads['fgvc']:,.0f}",
                      "yes" if spec.mergeable else "no", spec.paper, spec.summary)
    return table


def backbones_table(match: str = "*") -> Table:
    from .backbones import BACKBONES
    from .params import backbone_size

    table = Table(title="backbones")
    for column in ("backbone", "params", "input", "normalisation", "weights file", "timm tag", "summary"):
        table.add_column(column, justify="right" if column == "params" else "left")
    for name in BACKBONES.names(match):
        spec = BACKBONES.get(name)
        norm = "0.5 / 0.5" if tuple(spec.mean) == (0.5, 0.5, 0.5) else "ImageNet mean / std"
        file = spec.weight_file if spec.resolver is None else "(in the package)"
        table.add_row(name, f"{backbone_size(name) / 1e6:.1f}M", f"{spec.input_size} px {spec.interpolation}", norm,
                      file, spec.weight_tag, spec.summary)
    return table


def presets_table(match: str = "*") -> Table:
    from .presets import PRESETS

    table = Table(title="presets (run --preset NAME): published per-task settings")
    for column in ("preset", "method", "suite", "per task", "source"):
        table.add_column(column)
    for name in PRESETS.names(match):
        preset = PRESETS.get(name)
        keys = sorted({k for options in preset.tasks.values() for k in options if k != "recipe"})
        keys += [f"recipe.{k}" for k in sorted(preset.recipe_keys())]
        table.add_row(name, preset.method, preset.suite, ", ".join(keys), preset.source)
    return table


@app.command()
@user_errors
def prepare(
    suite: str = typer.Option(..., "--suite", help="suite to prepare (see `alore-bench list suites`)"),
    source_path: Optional[Path] = typer.Argument(None, help="with --source folder: the pre-made folder or .zip"),
    data_dir: Optional[Path] = DataDir,
    tasks: Optional[str] = typer.Option(None, "--tasks", help="comma-separated task names (default: all)"),
    source: Optional[str] = typer.Option(None, "--source", help="tfds (default for vtab1k), folder PATH (VTAB-1k folders), json PATH (FGVC with VPT's splits) or archive DIR (FGVC from the original archives)"),
    force: bool = typer.Option(False, "--force", help="rebuild tasks that are already prepared"),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch",
                                        help="accept split sizes that differ from the official ones (recorded)"),
    tfds_dir: Optional[Path] = typer.Option(None, "--tfds-dir", help="TFDS data dir (default: TFDS's own)"),
    manual_dir: Optional[Path] = typer.Option(None, "--manual-dir",
                                              help="manual downloads, one folder per TFDS builder (default: <data dir>/manual)"),
):
    """Build a suite's verified data cache."""
    from .api import prepare as prepare_api
    from .data.cache import default_data_dir
    from .data.suites import SUITES

    spec = SUITES.get(suite)
    root = default_data_dir(data_dir)
    with progress_bar() as progress:
        summary = prepare_api(spec.name, _split_list(tasks), root, source, source_path, force, allow_mismatch,
                              tfds_dir, manual_dir, progress, lambda m: progress.console.print(m, highlight=False, markup=False))
    console.print(f"{spec.name} in {root / spec.name}: {len(summary.prepared)} prepared, "
                  f"{len(summary.skipped)} already there, {len(summary.unavailable)} not prepared", highlight=False)
    for name, reason in summary.unavailable:
        err_console.print(f"not prepared: {name}: {reason}", highlight=False, markup=False)
    raise typer.Exit(1 if summary.unavailable else 0)


def checked_checkpoint_every(epochs: int) -> int:
    if epochs < 0:
        raise UserError(f"--checkpoint-every {epochs}: give a number of epochs, or 0 for no checkpoints")
    return epochs


def weights_option(weights: Optional[str], weights_dir: Optional[Path]) -> Optional[str]:
    """--weights wins; --weights-dir is a folder in which the backbone's published file is found by name."""
    if weights is not None or weights_dir is None:
        return weights
    if not weights_dir.is_dir():
        raise UserError(f"--weights-dir {weights_dir}: no such folder")
    return str(weights_dir.resolve())


def build_plan(method, backbone, suite, tasks, seeds, epochs, batch_size, lr, weight_decay, stage, normalisation,
               device, data_dir, results_dir, weights, force, opt, save_adapters=False, preset=None, protocol=None,
               compile_model=False):
    from .methods import METHODS
    from .study.plan import make_plan, parse_seeds

    recipe = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, stage=stage,
                  normalisation=normalisation, protocol=protocol, compile=True if compile_model else None)
    method_config = METHODS.get(method).config_from_opts(opt or [])
    return make_plan(method, backbone, suite, _split_list(tasks), parse_seeds(seeds), recipe, method_config,
                     data_dir, results_dir, device, weights, force, save_adapters, preset)


def make_executor(kind=None, workers=None, per_device=None, address=None, device="cpu", defaults=None,
                  cpus_per_job=None):
    """The executor from command-line options, falling back on a study file's [executor]."""
    from .study.executors import make_executor as make
    from .study.studyfile import ExecutorSpec

    spec = defaults or ExecutorSpec()
    pick = lambda given, default: default if given is None else given  # noqa: E731
    return make(pick(kind, spec.kind), pick(workers, spec.workers), pick(per_device, spec.per_device), device,
                pick(address, spec.address), progress_factory=progress_bar,
                cpus_per_job=pick(cpus_per_job, spec.cpus_per_job))


def parse_log(values: Optional[List[str]]) -> tuple:
    from .errors import unknown_name_error
    from .runner import LOGS

    import importlib.util

    for value in values or []:
        if value not in LOGS:
            raise unknown_name_error("log", value, LOGS, "--log")
    if "tensorboard" in (values or []) and importlib.util.find_spec("tensorboard") is None:
        raise UserError("--log tensorboard needs TensorBoard: pip install 'alore-bench[tensorboard]'")
    return tuple(dict.fromkeys(values or []))


def execute(plans, executor=None) -> int:
    """Check every plan, then run their jobs through the executor (default: here, in order)."""
    from .api import run_plans

    plans = plans if isinstance(plans, list) else [plans]
    summary = run_plans(plans, executor or make_executor(device=str(plans[0].device)),
                        say=lambda line: err_console.print(line, highlight=False, markup=False))
    first = plans[0]
    console.print(f"{len(summary.ran)} run, {len(summary.skipped)} skipped, {len(summary.failed)} failed "
                  f"({first.method.name} on {first.backbone.name}, suite {first.suite.name})", highlight=False)
    return 1 if summary.failed else 0


@app.command()
@user_errors
def run(
    method: str = MethodOpt,
    backbone: str = BackboneOpt,
    suite: str = SuiteOpt,
    tasks: Optional[str] = TasksOpt,
    seeds: str = typer.Option("42", "--seeds", help="comma-separated seeds, or a named set: vpt5, vpt3"),
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = typer.Option(None, "--lr"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    stage: Optional[str] = typer.Option(None, "--stage", metavar="<final|tune>", help="final (train800val200 -> test) or tune (train800 -> val200)"),
    protocol: Optional[str] = ProtocolOpt,
    normalisation: Optional[str] = typer.Option(None, "--normalisation", metavar="<backbone|imagenet|half>",
                                                help="override the protocol's: backbone, imagenet or half"),
    device: str = DeviceOpt,
    data_dir: Optional[Path] = DataDir,
    results_dir: Path = ResultsDir,
    weights: Optional[str] = WeightsOpt,
    weights_dir: Optional[Path] = WeightsDirOpt,
    force: bool = typer.Option(False, "--force", help="rerun even when an identical record exists"),
    opt: Optional[List[str]] = MethodOpts,
    save_adapters: bool = typer.Option(False, "--save-adapters",
                                       help="also save what each run trained (safetensors, beside its record)"),
    preset: Optional[str] = PresetOpt,
    no_tuned: bool = typer.Option(False, "--no-tuned", help="final stage: ignore tuning records, use the defaults"),
    executor: Optional[str] = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    per_device: Optional[int] = PerDeviceOpt,
    address: Optional[str] = AddressOpt,
    cpus_per_job: Optional[int] = CpusOpt,
    log: Optional[List[str]] = LogOpt,
    compile_model: bool = CompileOpt,
    checkpoint_every: int = CheckpointOpt,
):
    """Train and evaluate one method on a suite; writes one JSON record per task and seed. A final
    run uses the hyper-parameters `alore-bench tune` selected for this configuration when its
    records are in the results dir (each record says where its hyper-parameters came from)."""
    plan = build_plan(method, backbone, suite, tasks, seeds, epochs, batch_size, lr, weight_decay, stage,
                      normalisation, device, data_dir, results_dir, weights_option(weights, weights_dir), force, opt, save_adapters, preset,
                      protocol, compile_model)
    plan.use_tuned = not no_tuned
    plan.explicit_keys = explicit_keys(opt, lr=lr, weight_decay=weight_decay, epochs=epochs, batch_size=batch_size)
    plan.log = parse_log(log)
    plan.checkpoint_every = checked_checkpoint_every(checkpoint_every)
    raise typer.Exit(execute(plan, make_executor(executor, workers, per_device, address, str(plan.device),
                                                 cpus_per_job=cpus_per_job)))


def explicit_keys(opt, **recipe) -> frozenset:
    """The keys a user fixed on the command line (recipe values given, `--opt` names)."""
    from .runner import explicit_keys as fixed

    return fixed((item.partition("=")[0].strip() for item in opt or []), **recipe)


@app.command()
@user_errors
def tune(
    method: str = MethodOpt,
    backbone: str = BackboneOpt,
    suite: str = SuiteOpt,
    tasks: Optional[str] = TasksOpt,
    seeds: str = typer.Option("42", "--seeds", help="comma-separated tuning seeds"),
    grid: Optional[List[str]] = typer.Option(None, "--grid", metavar="KEY=V1,V2", help=(
        "key=v1,v2 (repeatable): lr, weight_decay or a method option; default: the suite's grid for the method")),
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    protocol: Optional[str] = ProtocolOpt,
    device: str = DeviceOpt,
    data_dir: Optional[Path] = DataDir,
    results_dir: Path = ResultsDir,
    weights: Optional[str] = WeightsOpt,
    weights_dir: Optional[Path] = WeightsDirOpt,
    force: bool = typer.Option(False, "--force", help="rerun grid points that already have records"),
    opt: Optional[List[str]] = MethodOpts,
    preset: Optional[str] = PresetOpt,
    executor: Optional[str] = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    per_device: Optional[int] = PerDeviceOpt,
    address: Optional[str] = AddressOpt,
    cpus_per_job: Optional[int] = CpusOpt,
    log: Optional[List[str]] = LogOpt,
    compile_model: bool = CompileOpt,
    checkpoint_every: int = CheckpointOpt,
):
    """Run a hyper-parameter grid on the suite's tuning stage (VTAB-1k: train800 -> val200, never
    test), one record per point, task and seed, resumable; then show the point each task selects.
    A later `alore-bench run` of the same configuration uses the selected points."""
    from .data.suites import SUITES
    from .methods import METHODS
    from .records import load_records
    from .tuning import make_grid, parse_grid_options, split_point

    spec = METHODS.get(method)
    suite_spec = SUITES.get(suite)
    chosen = parse_grid_options(grid, spec) if grid else make_grid(
        suite_spec.grid_for(spec.name), spec, f"suites/{suite_spec.name}.toml [tuning]")
    if not chosen:
        raise UserError(f"suite {suite_spec.name} has no default tuning grid for {spec.name}: pass --grid key=v1,v2")
    fixed = sorted(set(chosen.keys) & explicit_keys(opt))
    if fixed:
        raise UserError(f"--opt {', '.join(fixed)} is also a --grid key: give it either as a fixed option or in the grid")
    plans = []
    for index, point in enumerate(chosen.points()):
        train_values, method_values = split_point(point)
        plan = build_plan(method, backbone, suite, tasks, seeds, epochs, batch_size, train_values.get("lr"),
                          train_values.get("weight_decay"), "tune", None, device, data_dir, results_dir,
                          weights_option(weights, weights_dir),
                          force, list(opt or []) + [f"{k}={v}" for k, v in method_values.items()], False, preset,
                          protocol, compile_model)
        plan.grid, plan.grid_index, plan.log = chosen, index, parse_log(log)
        plan.checkpoint_every = checked_checkpoint_every(checkpoint_every)
        plans.append(plan)
    console.print(f"{len(plans)} grid points: " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in point.items()) for point in chosen.points()), highlight=False)
    status = execute(plans, make_executor(executor, workers, per_device, address, str(plans[0].device),
                                          cpus_per_job=cpus_per_job))
    console.print(selection_table(plans[0], load_records(results_dir)[0]))
    raise typer.Exit(status)


def selection_table(plan, records) -> Table:
    """Per task: the selected grid point and its mean validation top-1 (from this grid's records)."""
    from .tuning import select

    table = Table(title=f"tuning {plan.method.name} on {plan.backbone.name}, suite {plan.suite.name}: selected points "
                        "(mean validation top-1 over tuning seeds; ties: smaller lr, then grid order)")
    for column in ("task", "selected", "val top-1", "points with records"):
        table.add_column(column)
    for task in plan.tasks:
        best = select(records, task.name, plan.tuning_base) if plan.tuning_base else None
        if best is None:
            table.add_row(task.name, "—", "—", "0")
            continue
        table.add_row(task.name, ", ".join(f"{k}={v}" for k, v in best.point.items()), f"{best.val_top1:.2f}",
                      str(len(best.scores)))
    return table


FORMATS = {".md": "md", ".csv": "csv", ".json": "json", ".tex": "tex"}


@app.command()
@user_errors
def report(
    results_dir: Path = ResultsDir,
    suite: Optional[str] = typer.Option(None, "--suite", help="only this suite"),
    stage: str = typer.Option("final", "--stage", metavar="<final|tune|all>", help="final (test; default), tune (validation, grid points) or all"),
    fmt: Optional[str] = typer.Option(None, "--format", metavar="<md|csv|json|tex>", help="md, csv, json or tex (default: a terminal table)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write to this file; .md, .csv, .json or .tex picks the format"),
    long: bool = typer.Option(False, "--long", help="the record frame (one row per record) instead of the table"),
    compare: Optional[str] = typer.Option(None, "--compare", help="A:B, e.g. alore:lora or vit_b16/alore@3f2a:full"),
    with_reference: bool = typer.Option(False, "--with-reference", help="add published rows and a delta column"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="accuracy-vs-parameters figure (.png, .svg or .pdf)"),
    plot_delta: Optional[str] = typer.Option(None, "--plot-delta", help=(
        "METHOD: per-group bars of every row minus METHOD's row, into --plot-delta-out (default delta.png)")),
    plot_delta_out: Path = typer.Option(Path("delta.png"), "--plot-delta-out"),
    filters: Optional[List[str]] = typer.Option(None, "--filter", metavar="KEY=VALUE", help=(
        "key=VALUE[,VALUE] (repeatable): backbone, method, suite, task, seed, config (hash prefix), stage, lr, "
        "weight_decay, epochs, hparams, protocol, data_source, weights, preset, variant, opt.<option>")),
    std: Optional[bool] = typer.Option(None, "--std/--no-std", help="± std over seeds in the cells (default: on; "
                                                                     "LaTeX: off unless --std)"),
    names: Optional[List[str]] = typer.Option(None, "--name", metavar="NAME=TEXT", help=(
        'display name: method_or_backbone=TEXT (repeatable), e.g. --name lora="LoRA~\\cite{hu2022lora}"')),
    latex_fit: str = typer.Option("resize", "--latex-fit", help="resize (to the text width), rotate (headers) or none"),
    efficiency: bool = typer.Option(False, "--efficiency", help="the efficiency table: params, time, memory"),
):
    """Paper-style tables (mean ± std over seeds, group means, both averaging conventions) from the
    records: one table per suite and stage, rows told apart by the settings that differ."""
    from . import report as rep
    from .data.suites import SUITES
    from .records import load_records

    if not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: no such folder; run `alore-bench run` first")
    if out is not None and out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'table.md'}")
    if out is not None and fmt is None:
        fmt = FORMATS.get(out.suffix.lower())
        if fmt is None:
            raise UserError(f"--out {out}: unknown suffix {out.suffix!r}; use .md, .csv, .json or .tex (or --format)")
    if fmt not in (None, "md", "csv", "json", "tex"):
        raise UserError(f"--format {fmt!r}: choose md, csv, json or tex")
    if stage not in ("final", "tune", "all"):
        raise UserError(f"--stage {stage!r}: choose final, tune or all")
    if latex_fit not in rep.render.FITS:
        raise UserError(f"--latex-fit {latex_fit!r}: choose {', '.join(rep.render.FITS)}")
    for figure in (plot, plot_delta_out if plot_delta else None):
        if figure is not None and figure.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise UserError(f"--plot {figure}: use a .png, .svg or .pdf file name")
    display = parse_names(names or [])
    records, bad = load_records(results_dir)
    for path, reason in bad:
        err_console.print(f"warning: skipped {path}: {reason}", highlight=False)
    frame = rep.records_frame(records)
    chosen = rep.parse_filters(filters or [], frame)
    tasks = chosen.pop("task", None)
    frame = rep.apply_filters(frame, chosen)
    suites = [SUITES.get(suite)] if suite else [SUITES.get(n) for n in SUITES]
    stages = ("final", "tune") if stage == "all" else (stage,)
    tables = rep.suite_tables(frame, suites, stages, tasks)
    if with_reference:
        for table in tables:
            if table.stage == "final":
                table.reference = rep.load_reference(table.suite)
        if not tables:  # the published table alone
            tables = [rep.SuiteTable(s.restricted(tasks), [], reference=rep.load_reference(s.restricted(tasks)))
                      for s in suites]
        missing = [t.suite.name for t in tables if not t.reference and t.stage == "final"]
        if missing:
            err_console.print(f"note: no published rows for suite {', '.join(missing)} (suites/reference/<suite>.csv)",
                              highlight=False)
        tables = [t for t in tables if t.rows or t.reference or t.failed]
    if not tables:
        others = sorted(set(frame["stage"].dropna()) - set(stages))
        hint = f"; there are {', '.join(others)}-stage records: add --stage {others[0]}" if others else ""
        raise UserError(f"no records under {results_dir}" + (f" for suite {suite}" if suite else "")
                        + (" after --filter" if filters else "") + f" at stage {stage}{hint}")
    for table in tables:
        for failure in table.failed:
            err_console.print(f"failed run: {table.suite.name}: {failure}", highlight=False)

    if compare is not None:
        if len(tables) != 1:
            raise UserError("--compare needs one table: add --suite (and --stage)")
        result = rep.compare_rows(tables[0], frame, compare)
        emit(rep.compare_text(result, fmt) if fmt else None, out, lambda: console.print(compare_table(result)))
    elif efficiency:
        emit(rep.efficiency_text(tables, frame, display, fmt or "md") if fmt else None, out,
             lambda: console.print(rep.efficiency_text(tables, frame, display, "md"), highlight=False))
    elif long:
        if fmt not in ("csv", "json"):
            raise UserError("--long writes the record frame as csv or json: add --format csv or --out FILE.csv")
        emit(frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=2) + "\n", out, None)
    elif fmt is None:
        for table in tables:
            console.print(rep.render_rich(table, std is not False, display))
    else:
        with_std = std if std is not None else fmt != "tex"
        emit(rep.tables_text(tables, fmt, with_std, display, latex_fit), out, None)
    if plot is not None:
        rep.plot_accuracy_vs_params([t for t in tables if t.rows or t.reference], plot, display)
        err_console.print(f"wrote {plot}", highlight=False)
    if plot_delta is not None:
        rep.plot_delta([t for t in tables if t.rows], plot_delta, plot_delta_out, display)
        err_console.print(f"wrote {plot_delta_out}", highlight=False)


def parse_names(items: List[str]):
    from .report import Names

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise UserError(f'--name {item!r}: expected method_or_backbone=TEXT, e.g. --name lora="LoRA"')
        overrides[key.strip()] = value
    return Names(overrides)


def emit(text, out, show) -> None:
    from .data.cache import atomic_write_text

    if out is not None:
        atomic_write_text(out, text if text is not None else "")
        err_console.print(f"wrote {out}", highlight=False)
    elif text is not None:
        sys.stdout.write(text)
    else:
        show()


def compare_table(result) -> Table:
    wil = result["wilcoxon"]
    title = (f"{result['a']} vs {result['b']}: mean difference {result['mean_difference']:+.2f} over "
             f"{result['tasks']} tasks; Wilcoxon " + (f"p = {wil['p_value']:.3g}, rank-biserial r = {wil['rank_biserial']:+.2f}"
                                                      if wil else "not applicable (no difference)"))
    table = Table(title=title)
    for column in ("task", "A", "B", "seeds A/B", "Welch t", "p", "Hedges g"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for entry in result["per_task"]:
        fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
        table.add_row(entry["task"], f"{entry['a_mean']:.1f}", f"{entry['b_mean']:.1f}",
                      f"{entry['a_seeds']}/{entry['b_seeds']}", fmt(entry["welch_t"], ".2f"),
                      fmt(entry["p_value"], ".3g"), fmt(entry["hedges_g"], "+.2f"))
    return table


study_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="A whole protocol from one study file: tune, select, final runs, table.")
app.add_typer(study_app, name="study")
StudyFile = typer.Argument(..., help="a study TOML file (see studies/)")


def _study_jobs(study, data_dir=None, results_dir=Path("results"), device="auto"):
    from .study.run import study_job_list

    return study_job_list(study, data_dir, results_dir, device)


@study_app.command("plan")
@user_errors
def study_plan(file: Path = StudyFile):
    """The runs a study consists of, counted per suite, backbone, variant and stage; runs nothing."""
    from .study.run import study_counts
    from .study.studyfile import load_study

    study = load_study(file)
    table = Table(title=f"study {study.name}: suites {', '.join(study.suite_names)}, seeds {list(study.seeds)}, "
                        f"tuning seeds {list(study.tuning_seeds)}, executor {study.executor.kind}")
    for column in ("suite", "backbone", "variant", "stage", "grid points", "runs"):
        table.add_column(column, justify="right" if column in ("grid points", "runs") else "left")
    rows = study_counts(study, _study_jobs(study, device="cpu"))
    for row in rows:
        table.add_row(row["suite"], row["backbone"], row["variant"], row["stage"], str(row["grid points"] or "—"),
                      str(row["runs"]))
    console.print(table)
    console.print(f"{sum(r['runs'] for r in rows)} runs in all", highlight=False)


@study_app.command("status")
@user_errors
def study_status(file: Path = StudyFile, results_dir: Path = ResultsDir):
    """Done, failed and pending runs per suite, backbone, variant and stage, from the records."""
    from .records import load_records
    from .study.run import study_progress
    from .study.studyfile import load_study

    from .claims import Claim

    study = load_study(file)
    rows = study_progress(study, _study_jobs(study, device="cpu"), load_records(results_dir)[0],
                          Claim.running(results_dir))
    table = Table(title=f"study {study.name} in {results_dir}")
    columns = ("suite", "backbone", "variant", "stage", "runs", "done", "running", "failed", "pending", "train time")
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:4] else "right")
    for row in rows:
        table.add_row(row["suite"], row["backbone"], row["variant"], row["stage"], str(row["runs"]), str(row["done"]),
                      str(row["running"]), str(row["failed"]), str(row["pending"]), f"{row['train_seconds']:.0f} s")
    console.print(table)
    done = [r for r in rows if r["done"]]
    if done and any(r["pending"] for r in rows):  # a rough estimate from the time per finished run so far
        per_run = sum(r["train_seconds"] for r in rows) / max(sum(r["done"] + r["failed"] for r in rows), 1)
        console.print(f"about {per_run * sum(r['pending'] for r in rows) / 60:.0f} min of training remain "
                      f"(at {per_run:.1f} s per run so far)", highlight=False)


@study_app.command("run")
@user_errors
def study_run(file: Path = StudyFile, data_dir: Optional[Path] = DataDir, results_dir: Path = ResultsDir,
              device: str = DeviceOpt, force: bool = typer.Option(False, "--force", help="rerun recorded runs"),
              executor: Optional[str] = ExecutorOpt, workers: Optional[int] = WorkersOpt,
              per_device: Optional[int] = PerDeviceOpt, address: Optional[str] = AddressOpt,
              cpus_per_job: Optional[int] = CpusOpt, log: Optional[List[str]] = LogOpt):
    """Tune every variant on the tuning stage, select per task, run the final seeds, print the table.
    Idempotent: run it again after an interruption and it does only what is missing. Options given
    here override the study file's [executor]."""
    from .data.cache import default_data_dir
    from .env import resolve_device
    from .report import render_rich
    from .runner import clean_leftovers, preflight
    from .study.plan import make_plan
    from .study.run import run_study
    from .study.studyfile import load_study

    study = load_study(file)
    resolved = str(resolve_device(device))
    plans = [make_plan(variant.method, backbone, suite, study.tasks_of(suite), study.seeds,
                       {**study.recipe, **variant.recipe}, variant.method_config, data_dir, results_dir, resolved,
                       weights, preset=variant.preset)
             for suite in study.suite_names for backbone, weights in study.backbones
             for variant in study.variants if suite in variant.grids]
    for line in clean_leftovers(plans):
        err_console.print(line, highlight=False, markup=False)
    for plan in plans:  # data, its source, the results dir and the weights checked before the first job
        preflight(plan)
    with make_executor(executor, workers, per_device, address, resolved, study.executor, cpus_per_job) as runner_:
        summary = run_study(study, runner_, default_data_dir(data_dir), results_dir, resolved, force,
                            parse_log(log), say=lambda m: console.print(m, highlight=False, markup=False))
    console.print(f"{len(summary.ran)} run, {len(summary.skipped)} skipped, {len(summary.failed)} failed",
                  highlight=False)
    for table in study_tables(study, results_dir):
        console.print(render_rich(table))
    raise typer.Exit(1 if summary.failed else 0)


def study_tables(study, results_dir: Path):
    """The study's final-stage tables, one per suite: its variants' test records on the study's own
    tasks only (tuning rows and other tasks left out)."""
    from .data.suites import SUITES
    from .records import load_records
    from .report import records_frame, suite_table

    frame = records_frame(load_records(results_dir)[0])
    tables = []
    for suite in study.suite_names:
        mine = frame[(frame["stage"] == "final") & frame["variant"].isin([v.name for v in study.variants])
                     & frame["backbone"].isin([b for b, _w in study.backbones]) & (frame["suite"] == suite)
                     & frame["task"].isin(study.tasks_of(suite))]
        tables.append(suite_table(mine, SUITES.get(suite), tasks=study.tasks_of(suite), stage="final"))
    return tables


@study_app.command("report")
@user_errors
def study_report(file: Path = StudyFile, results_dir: Path = ResultsDir,
                 out: Optional[Path] = typer.Option(None, "--out", help="write .md, .csv, .json or .tex")):
    """The study's table (final stage, its variants only), on the terminal or into a file."""
    from . import report as rep
    from .study.studyfile import load_study

    tables = [t for t in study_tables(load_study(file), results_dir) if t.rows]
    if not tables:
        raise UserError(f"no final records of study {file} under {results_dir}: run `alore-bench study run {file}`")
    if out is None:
        for table in tables:
            console.print(rep.render_rich(table))
        return
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UserError(f"--out {out}: unknown suffix {out.suffix!r}; use .md, .csv, .json or .tex")
    emit(rep.tables_text(tables, fmt), out, None)


DEMO_METHODS = ("linear", "full", "lora", "alore")


@app.command()
@user_errors
def demo(
    data_dir: Optional[Path] = DataDir,
    results_dir: Path = typer.Option(Path("results"), "--results-dir"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    methods: str = typer.Option(",".join(DEMO_METHODS), "--methods", help="comma-separated methods to run"),
    seeds: str = typer.Option("42", "--seeds", help="comma-separated seeds, or a named set: vpt5, vpt3"),
    epochs: Optional[int] = EpochsOpt,
):
    """Offline in minutes: prepare the demo suite, run linear, full, lora and alore on demo_vit, report."""
    from .data.cache import default_data_dir
    from .data.prepare import PrepareOptions, prepare_suite
    from .data.suites import SUITES
    from .env import resolve_device
    from .methods import METHODS
    from .records import load_records
    from .report import records_frame, render_rich, suite_table

    start = time.perf_counter()
    resolve_device(device)  # every option is checked before any data is prepared
    chosen = _split_list(methods, "--methods")
    for method in chosen:
        METHODS.get(method)
    plans = [build_plan(method, "demo_vit", "demo", None, seeds, epochs, None, None, None, None, None,
                        device, data_dir, results_dir, None, False, []) for method in chosen]
    suite = SUITES.get("demo")
    with progress_bar() as progress:
        prepare_suite(suite, list(suite.tasks), default_data_dir(data_dir), PrepareOptions(), progress,
                      lambda m: progress.console.print(m, highlight=False, markup=False))
    status = 0
    for plan in plans:
        status |= execute(plan)
    records, _bad = load_records(results_dir)
    console.print(render_rich(suite_table(records_frame(records), suite)))
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s", highlight=False)
    raise typer.Exit(status)


@app.command()
@user_errors
def doctor(data_dir: Optional[Path] = DataDir, results_dir: Path = ResultsDir,
           as_json: bool = typer.Option(False, "--json", help="the checks as JSON (for scripts)")):
    """Versions, device, writable folders, prepared suites, weight files, extras and leftovers of
    killed processes: what to fix, one line each; exit code 0 only when nothing needs fixing."""
    from .data.cache import default_data_dir
    from .doctor import as_json as checks_json
    from .doctor import run_checks

    checks = run_checks(default_data_dir(data_dir), results_dir)
    if as_json:
        console.print(checks_json(checks), end="", highlight=False, soft_wrap=True)
    else:
        marks = {"ok": "[green]ok[/green]", "note": "[yellow]note[/yellow]", "problem": "[bold red]fix[/bold red]"}
        for check in checks:
            console.print(f"{marks[check.status]:>8}  {check.name}: {check.detail}", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if any(c.status == "problem" for c in checks) else 0)


@app.command()
@user_errors
def bench(
    backbone: str = typer.Option("vit_b16", "--backbone", help="backbone (random weights: nothing is downloaded)"),
    methods: str = typer.Option("alore,lora,full,linear", "--methods", help="comma-separated methods"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per step (default: 8 on CPU, 64 on CUDA)"),
    steps: int = typer.Option(5, "--steps", help="timed repetitions per measurement (the median is shown)"),
    device: str = DeviceOpt,
    threads: int = typer.Option(0, "--threads", help="torch threads per worker (0: torch's default)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the measurements as JSON here"),
):
    """Measure each method's cost on a backbone: trainable parameters, forward GFLOPs, training step
    time and peak memory against the cheapest PETL step (the floor), inference latency unmerged and
    merged against the plain backbone. Each method runs in a fresh process."""
    import json

    from .backbones import BACKBONES
    from .bench import BenchSettings, fmt, run_bench
    from .files import check_writable_folder
    from .data.cache import atomic_write_text
    from .env import resolve_device
    from .methods import METHODS

    spec = BACKBONES.get(backbone)
    chosen = _split_list(methods, "--methods")
    for name in chosen:
        METHODS.canonical(name)
    if steps < 1:
        raise UserError(f"--steps {steps}: give at least 1")
    resolved = resolve_device(device)
    settings = BenchSettings(backbone=spec.name, device=str(resolved), steps=steps, threads=threads,
                             batch_size=batch_size or (64 if resolved.type == "cuda" else 8))
    if settings.batch_size < 1:
        raise UserError(f"--batch-size {settings.batch_size}: give at least 1")
    if json_out is not None and json_out.is_dir():
        raise UserError(f"--json {json_out}: is a folder; give a file name such as {json_out / 'bench.json'}")
    if json_out is not None:
        check_writable_folder(json_out.resolve().parent, "--json")
    result = run_bench(settings, chosen, progress=lambda name: err_console.print(f"measuring {name} ...", highlight=False))
    table = Table(title=f"{spec.display_name}, batch {settings.batch_size}, {result['machine']} "
                        f"(median of {steps}; ratios: step and memory to the floor, latency to the backbone)")
    columns = ("method", "trainable (M)", "GFLOPs/img", "step (ms)", "x floor", "peak mem (GB)", "x floor ",
               "saved act. (MB)", "x floor  ", "latency (ms)", "x backbone", "merged (ms)", "x backbone ")
    for column in columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in result["rows"]:
        if row["error"]:
            table.add_row(row["method"], escape(row["error"]), *[""] * (len(columns) - 2))
            continue
        r = row["ratios"]
        peak = row["peak_bytes"] / 2**30 if row["peak_bytes"] is not None else None
        saved = row["saved_bytes"] / 2**20 if row["saved_bytes"] is not None else None
        table.add_row(row["method"], fmt(row["trainable"] / 1e6, ".3f"), fmt(row["gflops"], ".2f"),
                      fmt(row["step_ms"], ".0f"), fmt(r["step_vs_floor"], ".2f"), fmt(peak, ".2f"),
                      fmt(r["memory_vs_floor"], ".2f"), fmt(saved, ".0f"), fmt(r["saved_vs_floor"], ".2f"),
                      fmt(row["infer_ms"], ".1f"), fmt(r["infer_vs_backbone"], ".2f"),
                      fmt(row["merged_ms"], ".1f"), fmt(r["merged_vs_backbone"], ".2f"))
    console.print(table)
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=1))
    raise typer.Exit(1 if any(row["error"] for row in result["rows"]) else 0)


validate_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                           help="Check a method (the contract's test table), a suite file or a study file without running them.")
app.add_typer(validate_app, name="validate")


@validate_app.command("method")
@user_errors
def validate_method_command(name: str = typer.Argument(..., help="a registered method (built-in or plugin)")):
    """Run the method contract's checks on a tiny ViT: shape, identity at init where declared,
    trainable = declared budget, frozen weights bit-identical, gradients, config JSON round trip,
    safetensors save / load, merge == unmerged when mergeable. Exit 1 when a check fails."""
    from .conformance import validate_method
    from .methods import METHODS

    spec = METHODS.get(name)
    where = METHODS.provenance(spec.name)
    results = validate_method(spec.name)
    origin = f" (plugin {where.get('distribution') or where.get('file')})" if where else ""
    console.print(f"method {spec.name}{origin}:", highlight=False)
    for result in results:
        mark = "[green]ok[/green]  " if result.ok else "[bold red]FAIL[/bold red]"
        console.print(f"  {mark} {escape(result.check)}: {escape(result.detail)}", highlight=False, soft_wrap=True)
    failed = [r.check for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} of {len(results)} checks passed", highlight=False)
    raise typer.Exit(1 if failed else 0)


@validate_app.command("suite")
@user_errors
def validate_suite_command(file: Path = typer.Argument(..., help="a suite TOML file")):
    """Parse a suite file as `prepare` and `run` would (tasks, groups, splits, stages); runs nothing."""
    from .data.suites import read_suite_file

    suite = read_suite_file(file)
    console.print(f"{file}: suite {suite.name}, {len(suite.tasks)} tasks in {len(suite.groups)} groups, "
                  f"splits {', '.join(suite.splits)}, source {suite.source}: ok", highlight=False)


@validate_app.command("study")
@user_errors
def validate_study_command(file: Path = typer.Argument(..., help="a study TOML file")):
    """Parse a study file and expand it into its jobs (methods, options, grids, suites, tasks,
    backbones checked); runs nothing and needs no data."""
    from .study.studyfile import load_study

    study = load_study(file)
    jobs = _study_jobs(study, device="cpu")
    console.print(f"{file}: study {study.name}, {len(study.variants)} variants on {', '.join(study.suite_names)}, "
                  f"{len(jobs)} jobs: ok", highlight=False)


def main() -> None:  # pragma: no cover
    app()
