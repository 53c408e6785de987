"""Reproducible performance measurements: ``python benchmarks/run.py [--quick]``."""
