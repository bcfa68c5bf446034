"""The `alore-bench` Typer app, assembled from one module per command group, and its one error
handler: a UserError or a usage error is one line and exit code 2 (no traceback, no usage
block); an interrupt says how to resume and exits 130 (SIGINT) or 143 (SIGTERM)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

try:  # typer >= 0.26 carries its own copy of click; its exceptions derive from TyperException
    from typer.exceptions import TyperException as ClickError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException as ClickError

from ..errors import UserError
from . import render
from .options import flag_style

ABOUT = "Benchmark parameter-efficient transfer learning (ALoRE and baselines) on VTAB-1k, FGVC and an offline demo suite."


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt (claims released, temporary files removed on the way out)."""


def _terminate(signum, frame) -> None:
    raise Terminated()


class Group(TyperGroup):
    """The top-level group: the entry point's error handling, for the console script and for
    typer's CliRunner alike."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
        render.fit_to_terminal()
        try:
            _refuse_empty_values(sys.argv[1:] if args is None else list(args))
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                **extra)
        except UserError as exc:
            render.error(exc.render(flag_style))
            code = exc.exit_code
        except typer.Abort:
            code = 1
        except ClickError as exc:  # usage errors: one line, not click's three
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            render.error(" ".join(message.replace("Value error, ", "").split()))
            code = getattr(exc, "exit_code", 2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:  # before typer turns it into a silent exit code
            terminated = isinstance(exc, Terminated)
            render.say(f"{'terminated' if terminated else 'interrupted'}: rerun the same command to resume "
                       "(finished work is kept: records, prepared tasks; nothing half-written is left)")
            raise typer.Exit(143 if terminated else 130) from None


def _refuse_empty_values(args: List[str]) -> None:
    """An empty value is a mistake (`--results-dir "$UNSET"` would mean the current folder, `--tasks ""`
    every task): refused before any command sees it."""
    for index, word in enumerate(args):
        if word.startswith("--") and word.endswith("=") and len(word) > 3:
            raise UserError(f"{word[:-1]}: empty value; give a value or leave the option out")
        if word == "":
            before = args[index - 1] if index else ""
            if before.startswith("--") and "=" not in before:
                raise UserError(f"{before}: empty value; give a value or leave the option out")
            raise UserError(f"an empty argument after {' '.join(['alore-bench', *args[:index]][-3:])!r}: "
                            "give a value or leave it out")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


app = typer.Typer(cls=Group, no_args_is_help=True, rich_markup_mode=None, help=ABOUT)


def _version(value: bool) -> None:
    if value:
        from .._version import __version__

        render.out(f"alore-bench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
    plugins: Annotated[Optional[List[Path]], typer.Option("--plugins", metavar="FILE.py", help=(
        "a local plugin module registering methods, backbones or suites (repeatable; also $ALORE_BENCH_PLUGINS, "
        "separated by ':'); installed plugins load through entry points"))] = None,
) -> None:
    """Benchmark parameter-efficient transfer learning (ALoRE and baselines) on VTAB-1k, FGVC and an offline demo suite."""
    if plugins:
        from ..registry import PLUGINS_ENV

        # Through the environment, so worker processes load the same plugins.
        given = [str(p.resolve()) for p in plugins]
        os.environ[PLUGINS_ENV] = os.pathsep.join([*filter(None, os.environ.get(PLUGINS_ENV, "").split(os.pathsep)),
                                                   *given])


def _assemble() -> None:
    from . import bench, demo, doctor, listing, prepare, report, run, study, validate

    app.command("list")(listing.list_command)
    app.command()(prepare.prepare)
    app.command()(run.run)
    app.command()(run.tune)
    app.command()(report.report)
    app.add_typer(study.app, name="study")
    app.command()(demo.demo)
    app.command()(doctor.doctor)
    app.command()(bench.bench)
    app.add_typer(validate.app, name="validate")


_assemble()


def main() -> None:  # the console script
    app()
