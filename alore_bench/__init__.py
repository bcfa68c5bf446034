"""alore-bench: a benchmark harness for parameter-efficient transfer learning (PETL)."""

__version__ = "0.1.0"
