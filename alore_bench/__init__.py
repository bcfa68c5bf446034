"""alore-bench: a benchmark harness for parameter-efficient transfer learning (PETL).

The Python API (`alore_bench.api`) is importable from here, loaded on first use so that
`import alore_bench` stays light: prepare, make_plan, run_plans, run, load_frame, suite_table,
render_markdown, validate_method."""

__version__ = "0.1.0"

API = ("prepare", "make_plan", "run_plans", "run", "load_frame", "suite_table", "render_markdown", "validate_method")


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'alore_bench' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(API))
