"""Every option of every command, walked with a bad value of each kind it can receive: one line,
exit code 2, no traceback, no hang (10 s), nothing written.

The options come from the app itself, so a new option that no row below classifies fails
`test_every_option_is_walked` until its bad values are written down here."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import typer.main
from typer.testing import CliRunner

from alore_bench.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
HUGE = "9" * 40  # past every integer type a library below would take

# The bad values of each kind of option. {file}, {folder}, {under_file} are filled per test: an
# existing file, an existing folder, and a path whose parent is a file (so it can never be made).
KINDS: Dict[str, List[str]] = {
    "positive_int": ["", "abc", "0", "-1", HUGE, "1.5"],
    "count_or_zero": ["", "abc", "-1", HUGE],
    "positive_float": ["", "abc", "0", "-1", "nan", "inf", "1e400", HUGE],
    "float_or_zero": ["", "abc", "-1", "nan", "inf", HUGE],
    "choice": ["", "bogus"],
    "name": ["", "bogus"],
    "names": ["", ",", "bogus", "linear,bogus"],
    "tasks": ["", ",", "bogus", "digits,bogus"],
    "seeds": ["", "abc", "-1", HUGE, "1,abc", "vpt9"],
    "device": ["", "bogus", "cuda:abc", "cuda:-1", "cpu:0"],
    "folder_in": ["", "{file}", "/dev/null", "{under_file}"],
    "folder_out": ["", "{file}", "/dev/null", "{under_file}"],
    # Not /dev/null: as root, a missed check would replace the device with a file; a pipe of our own is as
    # much "not a regular file" and harmless to lose.
    "file_out": ["", "{folder}", "{fifo}", "{under_file}"],
    "file_in": ["", "{folder}", "/dev/null", "{missing}", "{empty}"],
    "opt": ["", "rank", "rank=", f"rank={HUGE}", "rank=abc", "rank=-1", "bogus=1", "rank=4,rank=8"],
    "grid": ["", "lr", "lr=", "lr=abc", "lr=-1", "bogus=1", f"lr={HUGE}"],
    "weights": ["", "{folder}", "/dev/null", "{missing}", "{empty}"],
    "address": ["", "bogus", "ray://", "ray://host:abc"],
    "key_value": ["", "novalue", "=x"],
    "compare": ["", "alore", ":", "alore:bogus"],
    "match": ["", "[", "nothing*matches"],
    "length": ["", "abc", "5", "0in", "-1in", "1e9in", f"{HUGE}pt", "5.5furlong"],
}

# command -> option -> kind. Flags (booleans) take no value and are not listed.
OPTIONS: Dict[str, Dict[str, str]] = {
    "list": {"WHAT": "choice", "--match": "match", "--backbone": "name", "--data-dir": "folder_in"},
    "prepare": {"--suite": "name", "SOURCE_PATH": "file_in", "--data-dir": "folder_out", "--tasks": "tasks",
                "--source": "choice", "--tfds-dir": "folder_in", "--manual-dir": "folder_in"},
    "run": {"--method": "name", "--backbone": "name", "--suite": "name", "--tasks": "tasks", "--seeds": "seeds",
            "--device": "device", "--data-dir": "folder_in", "--results-dir": "folder_out", "--weights": "weights",
            "--weights-dir": "folder_in", "--opt": "opt", "--preset": "name", "--executor": "choice",
            "--workers": "positive_int", "--per-device": "positive_int", "--address": "address",
            "--cpus-per-job": "positive_int", "--log": "choice", "--checkpoint-every": "count_or_zero",
            "--eval-batch-size": "positive_int", "--test-every": "count_or_zero", "--epochs": "positive_int", "--batch-size": "positive_int", "--lr": "positive_float",
            "--weight-decay": "float_or_zero", "--stage": "choice", "--protocol": "choice",
            "--normalisation": "choice"},
    "report": {"--results-dir": "folder_in", "--suite": "name", "--stage": "choice", "--format": "choice",
               "--out": "file_out", "--compare": "compare", "--plot": "file_out", "--plot-delta": "name",
               "--plot-delta-out": "file_out", "--filter": "key_value", "--name": "key_value",
               "--latex-fit": "choice", "--latex-width": "length", "--bib": "file_in", "--diagnostic": "choice"},
    "demo": {"--data-dir": "folder_out", "--results-dir": "folder_out", "--device": "device", "--methods": "names",
             "--seeds": "seeds", "--epochs": "positive_int"},
    "doctor": {"--data-dir": "folder_in", "--results-dir": "folder_in"},
    "bench": {"--backbone": "name", "--methods": "names", "--batch-size": "positive_int", "--steps": "positive_int",
              "--device": "device", "--threads": "count_or_zero", "--json": "file_out"},
    "study plan": {"FILE": "file_in"},
    "study status": {"FILE": "file_in", "--results-dir": "folder_in"},
    "study run": {"FILE": "file_in", "--data-dir": "folder_in", "--results-dir": "folder_out", "--device": "device",
                  "--executor": "choice", "--workers": "positive_int", "--per-device": "positive_int",
                  "--address": "address", "--cpus-per-job": "positive_int", "--log": "choice",
                  "--eval-batch-size": "positive_int"},
    "study report": {"FILE": "file_in", "--results-dir": "folder_in", "--out": "file_out"},
    "validate method": {"NAME": "name"},
    "validate suite": {"FILE": "file_in"},
    "validate study": {"FILE": "file_in"},
}
# tune has run's options but these, and --grid.
OPTIONS["tune"] = {**{k: v for k, v in OPTIONS["run"].items()
                      if k not in ("--save-adapters", "--tuned", "--lr", "--weight-decay", "--stage", "--normalisation",
                                   "--test-every")},
                   "--grid": "grid"}
# Values that are good for one option though bad for its kind: (command, option, value).
GOOD: set = set()


def app_options() -> Dict[str, List[Tuple[str, bool]]]:
    """command -> [(option or ARGUMENT, is_flag)] as the app defines them."""
    out: Dict[str, List[Tuple[str, bool]]] = {}

    def walk(command, path: Tuple[str, ...]):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
            return
        out[" ".join(path)] = [(p.opts[0] if p.param_type_name == "option" else p.name.upper(),
                                bool(getattr(p, "is_flag", False))) for p in command.params]

    walk(typer.main.get_command(app), ())
    return out


def test_every_option_is_walked():
    for command, params in app_options().items():
        walked = OPTIONS.get(command, {})
        missing = [name for name, is_flag in params if not is_flag and name not in walked and name != "--help"]
        assert not missing, f"{command}: no bad values written down for {missing}"
        unknown = set(walked) - {name for name, _flag in params}
        assert not unknown, f"{command}: walks options it does not have: {unknown}"


def baseline(command: str, data: Path, tmp: Path) -> List[str]:
    """A command line that would do real work: the bad value must stop it before it starts."""
    study = tmp / "demo.toml"
    study.write_text((ROOT / "studies" / "demo.toml").read_text())
    small_run = ["--method", "linear", "--backbone", "demo_vit", "--suite", "demo", "--tasks", "digits",
                 "--epochs", "1", "--device", "cpu", "--data-dir", str(data), "--results-dir", str(tmp / "results")]
    return {
        "list": ["list", "methods"],
        "prepare": ["prepare", "--suite", "demo", "--data-dir", str(tmp / "data")],
        "run": ["run", *small_run],
        "tune": ["tune", *small_run, "--grid", "lr=0.01"],
        "report": ["report", "--results-dir", str(tmp / "results")],
        "demo": ["demo", "--data-dir", str(tmp / "data"), "--results-dir", str(tmp / "results"), "--epochs", "1"],
        "doctor": ["doctor", "--data-dir", str(data), "--results-dir", str(tmp / "results")],
        "bench": ["bench", "--backbone", "demo_vit", "--methods", "linear", "--steps", "1", "--device", "cpu"],
        "study plan": ["study", "plan", str(study)],
        "study status": ["study", "status", str(study), "--results-dir", str(tmp / "results")],
        "study run": ["study", "run", str(study), "--data-dir", str(data), "--results-dir", str(tmp / "results")],
        "study report": ["study", "report", str(study), "--results-dir", str(tmp / "results")],
        "validate method": ["validate", "method", "linear"],
        "validate suite": ["validate", "suite", str(tmp / "suite.toml")],
        "validate study": ["validate", "study", str(study)],
    }[command]


def with_value(args: List[str], command: str, option: str, value: str) -> List[str]:
    """args with `option` set to `value` (replacing a value already there); ARGUMENTs are positional."""
    words = command.split()
    if not option.startswith("--"):  # the positional argument: after the command's words
        rest = args[len(words):]
        positional = [] if not rest or rest[0].startswith("--") else rest[:1]
        return [*words, value, *rest[len(positional):]]
    out, skip = [], False
    for i, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word == option:
            skip = True
            continue
        out.append(word)
    return [*out, option, value]


def cases():
    for command, options in sorted(OPTIONS.items()):
        for option, kind in options.items():
            for value in KINDS[kind]:
                if (command, option, value) not in GOOD:
                    yield pytest.param(command, option, value, id=f"{command}/{option}={value[:12]!r}")


def snapshot(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def records(demo_data, tmp_path_factory) -> Path:
    """One record, so that report and study report have something to do."""
    import alore_bench as ab

    results = tmp_path_factory.mktemp("walk") / "results"
    ab.run("linear", "demo_vit", suite="demo", tasks=["digits"], data_dir=demo_data, results_dir=results,
           epochs=1, device="cpu")
    return results


@pytest.fixture
def world(tmp_path, demo_data, records):
    shutil.copytree(records, tmp_path / "results")
    (tmp_path / "a_file.txt").write_text("not a folder\n")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "empty.toml").write_text("")
    os.mkfifo(tmp_path / "a_pipe")
    (tmp_path / "suite.toml").write_text((ROOT / "suites" / "vtab1k.toml").read_text())
    return tmp_path


@pytest.mark.parametrize("command, option, value", list(cases()))
def test_a_bad_value_is_one_line(world, demo_data, command, option, value, monkeypatch):
    monkeypatch.chdir(world)  # a value read as "here" writes where the snapshot sees it
    value = value.format(file=world / "a_file.txt", folder=world / "a_folder", under_file=world / "a_file.txt" / "x",
                         missing=world / "missing.toml", empty=world / "empty.toml", fifo=world / "a_pipe")
    args = baseline(command, demo_data, world)
    if option == "--opt":  # a method with options, so that the values (not the names) are what is wrong
        args = with_value(args, command, "--method", "lora")
    args = with_value(args, command, option, value)
    before, data_before = snapshot(world), snapshot(demo_data)

    def hang(signum, frame):
        raise TimeoutError(f"{' '.join(args)} still running after 10 s")

    signal.signal(signal.SIGALRM, hang)
    signal.alarm(10)
    start = time.monotonic()
    try:
        result = runner.invoke(app, args, catch_exceptions=True)
    finally:
        signal.alarm(0)
    assert not isinstance(result.exception, TimeoutError), result.exception
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == 2, f"exit {result.exit_code} for {args}:\n{result.output[-2000:]}"
    assert len(lines) == 1 and "Traceback" not in result.output, f"{args}:\n{result.output[-2000:]}"
    # The line is about this option: it names the option or the value (so no other mistake of the
    # baseline answered instead).
    named = option in lines[0] or (value and value in lines[0]) or (not value and "empty" in lines[0])
    assert named, f"{args}: the message names neither {option} nor {value!r}: {lines[0]}"
    assert snapshot(world) == before and snapshot(demo_data) == data_before, f"{args} wrote files"
    assert time.monotonic() - start < 10
    assert Path("/dev/null").is_char_device()


@pytest.mark.parametrize("command", ["list", "prepare", "run", "tune", "report", "study plan", "study status",
                                     "validate suite", "validate study"])
def test_the_baselines_do_their_work(world, demo_data, command, monkeypatch):
    """The walk's command lines work as they are: the bad value, not the rest, is what each case refuses
    (the commands left out here take minutes; their cases also check that the line names the option)."""
    monkeypatch.chdir(world)
    result = runner.invoke(app, baseline(command, demo_data, world))
    assert result.exit_code == 0, result.output[-2000:]
