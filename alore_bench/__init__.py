"""alore-bench: a benchmark harness for parameter-efficient transfer learning (PETL).

The Python API (`alore_bench.api`) is importable from here, loaded on first use so that
`import alore_bench` stays light: prepare, run, tune, study_run, report, ... (see `api.__all__`)."""

from ._version import __version__  # noqa: F401

API = ("prepare", "build_spec", "run", "tune", "study_plan", "study_run", "study_status", "study_report", "report",
       "load_frame", "suite_table", "render_markdown", "list_tables", "bench", "doctor", "validate_method",
       "validate_suite", "validate_study", "demo")


def __getattr__(name: str):
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'alore_bench' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(API))

