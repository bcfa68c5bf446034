"""Suites, prepared-data cache, loaders and the built-in demo suite."""
