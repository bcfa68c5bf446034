"""Runs: the run spec and its one builder (spec.py), hyper-parameter layers and tuned selection
(hparams.py), checks of the world before training (preflight.py), one job -> one outcome
(runner.py, trial.py), the record schema and files (record.py). Importing this package imports
nothing heavy: record.py, spec.py and outcome.py stay free of torch."""
