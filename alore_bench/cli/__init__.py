"""The `alore-bench` command line: a Typer app (`app`) assembled from one module per command group,
each command parsing its options, calling one function of `alore_bench.api` and rendering."""

from .app import app, main

__all__ = ["app", "main"]
