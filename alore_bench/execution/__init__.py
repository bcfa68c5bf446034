"""Execution: where jobs run, never what they compute. jobs.py turns specs into jobs and runs them
(preflight once per spec, then an executor, in phases where a study needs them); executors.py
holds the executors (local, workers, Ray) as a small registry."""
