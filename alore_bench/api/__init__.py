"""The Python API: the one way in. Every command of `alore-bench` parses its options, calls one
function here with the same arguments and defaults, and renders what it returns.

    import alore_bench as ab
    ab.prepare("demo")
    ab.run("alore", "demo_vit", suite="demo", tasks=["digits"], seeds=[42, 44], epochs=3)
    print(ab.report("results", suite="demo", fmt="md").text)

Paths accept str or Path. Recipe values (`epochs`, `lr`, `batch_size`, any TrainConfig field) are
keywords; None means the suite's recipe for the method. Errors are `UserError`s naming the
argument (`lr`, `options`), never a command-line flag."""

from .reports import load_frame, render_markdown, report, suite_table
from .running import ExecutorChoice, RunResult, TuneResult, build_spec, prepare, run, tune
from .studies import study_plan, study_report, study_run, study_status, study_tables
from .tools import bench, demo, doctor, list_tables, validate_method, validate_study, validate_suite

__all__ = ["prepare", "build_spec", "run", "tune", "study_plan", "study_run", "study_status", "study_report",
           "study_tables", "report", "load_frame", "suite_table", "render_markdown", "list_tables", "bench", "doctor",
           "validate_method", "validate_suite", "validate_study", "demo", "RunResult", "TuneResult", "ExecutorChoice"]
