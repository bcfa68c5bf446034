"""Options shared by the commands, as Annotated types with Enum choices, and the one map from the
core's field names (`lr`, `results_dir`) to the flags that set them (`--lr`, `--results-dir`).

A recipe field exposed on the command line is one entry of RECIPE: `with_recipe` adds it to
`run` (and to `tune` unless excluded) and hands the values over as one `recipe` dict."""

from __future__ import annotations

import functools
import inspect
import shlex
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Dict, List, Optional, Tuple

import typer


from ..config import TrainConfig
from ..data.prepare import SOURCES
from ..errors import has_value
from ..execution.executors import EXECUTORS
from ..listing import KINDS
from ..runs.spec import LOGS


def choices(name: str, values) -> type:
    """An Enum of plain string choices (what Typer shows as <a|b|c> and checks)."""
    return Enum(name, {str(v): str(v) for v in values}, type=str)


def _literal(field_name: str) -> tuple:
    return typing.get_args(typing.get_type_hints(TrainConfig)[field_name])


# From the definitions they choose among, so a new protocol or executor is a new choice here too.
Stage = choices("Stage", _literal("stage"))
Protocol = choices("Protocol", _literal("protocol"))
Normalisation = choices("Normalisation", [v for v in _literal("normalisation") if v != "protocol"])
ExecutorKind = choices("ExecutorKind", EXECUTORS.names())
LogKind = choices("LogKind", LOGS)
SourceKind = choices("SourceKind", SOURCES)
ListKind = choices("ListKind", KINDS)
# The report's choices are the reporting package's (reporting.build STAGES, FORMATS, latex FITS),
# written out here so that `--help` does not import pandas; tests/cli/test_commands.py checks they agree.
ReportStage = choices("ReportStage", ("final", "tune", "all"))
ReportFormat = choices("ReportFormat", ("md", "csv", "json", "tex"))
LatexFit = choices("LatexFit", ("auto", "split", "rotate", "landscape", "none"))


def value(choice: Any) -> Any:
    """An Enum choice as the plain value the API takes (None and plain values pass through)."""
    return choice.value if isinstance(choice, Enum) else choice


# Where things are.
DataDir = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="prepared data; default $ALORE_BENCH_DATA or ~/.cache/alore-bench/data")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="the folder of result records (read and written)")]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")]
Weights = Annotated[Optional[str], typer.Option("--weights", help=(
    "pretrained weights file (or a folder holding the published file), a release by name (vit_b16: `original`, "
    "`augreg`; see `list backbones`), or `timm` for the equivalent timm hub tag"))]
WeightsDir = Annotated[Optional[Path], typer.Option("--weights-dir", help=(
    "folder of the published weight files, found by name (default $ALORE_BENCH_WEIGHTS or <data dir>/weights)"))]

# What runs.
Method = Annotated[str, typer.Option("--method", help="method name (see `alore-bench list methods`)")]
Backbone = Annotated[str, typer.Option("--backbone", help="backbone name (see `alore-bench list backbones`)")]
Suite = Annotated[str, typer.Option("--suite", help="suite name (see `alore-bench list suites`)")]
Tasks = Annotated[Optional[str], typer.Option("--tasks", help="comma-separated tasks (default: the whole suite)")]
Seeds = Annotated[str, typer.Option("--seeds", help="comma-separated seeds, or a named set: vpt5, vpt3")]
Opt = Annotated[Optional[List[str]], typer.Option("--opt", metavar="KEY=VALUE", help="method option (repeatable)")]
Preset = Annotated[Optional[str], typer.Option("--preset", help=(
    "published per-task settings (see `alore-bench list presets`)"))]
Force = Annotated[bool, typer.Option("--force", help="rerun even when an identical record exists")]

# Where jobs run: they never change what a job computes.
Executor = Annotated[Optional[ExecutorKind], typer.Option("--executor", help="local (default), workers or ray")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="worker processes (on CUDA each owns a device slot)")]
PerDevice = Annotated[Optional[int], typer.Option("--per-device", help="runs packed onto one GPU (workers and ray)")]
Address = Annotated[Optional[str], typer.Option("--address", help=(
    "ray: auto (the running cluster) or ray://host:port; default: a local Ray instance"))]
CpusPerJob = Annotated[Optional[int], typer.Option("--cpus-per-job", help=(
    "ray: CPUs (torch threads) each job asks for (default 1)"))]
Log = Annotated[Optional[List[LogKind]], typer.Option("--log", help=(
    "also write training curves: tensorboard (under <results>/tensorboard)"))]
CheckpointEvery = Annotated[int, typer.Option("--checkpoint-every", help=(
    "save a resumable checkpoint every N epochs (0: never); a killed run resumes from it with the same numbers"))]
EVAL_BATCH_HELP = ("images per evaluation batch, independent of the training batch (not part of the configuration: "
                   "evaluation learns nothing)")
EvalBatchSize = Annotated[int, typer.Option("--eval-batch-size", help=EVAL_BATCH_HELP)]
StudyEvalBatchSize = Annotated[Optional[int], typer.Option("--eval-batch-size", help=(
    EVAL_BATCH_HELP + "; default: the study file's [executor] eval_batch_size, else 256"))]

TestEvery = Annotated[int, typer.Option("--test-every", help=(
    "diagnostic, off at 0: evaluate the test split every N epochs of a final run and keep the curve in the "
    "record (diagnostics.test_curve); no selection, table or delta reads it, only "
    "`report --diagnostic best-of-test`"))]

# The training recipe's fields on the command line: name -> (annotation, default). None: the suite's.
RECIPE: Dict[str, Tuple[Any, Any]] = {
    "epochs": (Annotated[Optional[int], typer.Option("--epochs", help="training epochs")], None),
    "batch_size": (Annotated[Optional[int], typer.Option("--batch-size", help="images per step")], None),
    "lr": (Annotated[Optional[float], typer.Option("--lr", help="peak learning rate")], None),
    "weight_decay": (Annotated[Optional[float], typer.Option("--weight-decay", help="weight decay")], None),
    "stage": (Annotated[Optional[Stage], typer.Option("--stage", help=(
        "final (train800val200 -> test) or tune (train800 -> val200)"))], None),
    "protocol": (Annotated[Optional[Protocol], typer.Option("--protocol", help=(
        "input pipeline as a unit: auto (the suites' default: the one the prepared data imply, recorded), vpt "
        "(TFDS data, ImageNet mean/std, bilinear), noah (pre-made folders, ImageNet mean/std, bicubic) or "
        "native (the backbone's own)"))], None),
    "normalisation": (Annotated[Optional[Normalisation], typer.Option("--normalisation", help=(
        "override the protocol's: backbone, imagenet or half"))], None),
    "compile": (Annotated[bool, typer.Option("--compile", help=(
        "torch.compile the model (recorded; mostly worth it on GPUs)"))], False),
}


def with_recipe(exclude: Tuple[str, ...] = ()):
    """Add RECIPE's options (but `exclude`) to a command; the command receives them as `recipe`,
    a dict of the values given (Enum choices as their values, a false flag as not given)."""

    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "recipe"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                 for name, (annotation, default) in RECIPE.items() if name not in exclude]

        @functools.wraps(command)
        def wrapper(**kwargs):
            recipe = {name: value(kwargs.pop(name)) for name in list(kwargs) if name in RECIPE}
            recipe = {k: v for k, v in recipe.items() if v is not None and v is not False}
            return command(recipe=recipe, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*own, *added])
        return wrapper

    return decorate


# Field names whose flag is not `--` + the name with dashes (booleans: (flag, negated flag)).
FLAGS: Dict[str, Any] = {
    "options": "--opt", "use_tuned": ("--tuned", "--no-tuned"), "json_out": "--json", "fmt": "--format",
    "names": "--name", "filters": "--filter", "source_path": "SOURCE_PATH", "what": "WHAT",
    "footnotes": ("--notes", "--no-notes"),
}


def flag_style(name: str, given: Any) -> str:
    """How the command line names a field in a message: `--lr`, `--lr 0.5`, `--force`, `--no-tuned`."""
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    if isinstance(flag, tuple):
        on, off = flag
    else:
        on, off = flag, "--no-" + flag[2:] if flag.startswith("--") else flag
    if not has_value(given):
        return on
    if isinstance(given, bool):
        return on if given else off
    return f"{on} {shlex.quote(str(given))}"
