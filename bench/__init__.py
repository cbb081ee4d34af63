"""Benchmarks, run by hand (``python -m bench``); never timed tests."""
