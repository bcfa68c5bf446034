"""The Python API: the one way in. Every command of `alore-bench` parses its options, calls one
function here with the same arguments and defaults, and renders what it returns.

    import alore_bench as ab
    ab.prepare("demo")
    ab.run("alore", "demo_vit", suite="demo", tasks=["digits"], seeds=[42, 44], epochs=3)
    print(ab.report("results", suite="demo", fmt="md").text)

Paths accept str or Path. Recipe values (`epochs`, `lr`, `batch_size`, any TrainConfig field) are
keywords; None means the suite's recipe for the method. Errors are `UserError`s naming the
argument (`lr`, `options`), never a command-line flag."""

from typing import Any

# Each function lives in the module of its kind; they are imported on first use, so that a report or a
# study listing never pays for the training stack (torch, timm, peft) it does not touch.
_HOMES = {
    "reports": ("load_frame", "render_markdown", "report", "suite_table"),
    "running": ("ExecutorChoice", "RunResult", "TuneResult", "build_spec", "prepare", "run", "tune"),
    "studies": ("study_plan", "study_report", "study_run", "study_status", "study_tables"),
    "tools": ("bench", "demo", "doctor", "list_tables", "validate_method", "validate_study", "validate_suite"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = ["prepare", "build_spec", "run", "tune", "study_plan", "study_run", "study_status", "study_report",
           "study_tables", "report", "load_frame", "suite_table", "render_markdown", "list_tables", "bench", "doctor",
           "validate_method", "validate_suite", "validate_study", "demo", "RunResult", "TuneResult", "ExecutorChoice"]


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_HOME_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
