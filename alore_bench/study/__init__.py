"""Studies: a study file (suites, backbones, method variants, grids, seeds) expanded into tuning
and final runs. This package sits above the runner: it only decides what runs."""
