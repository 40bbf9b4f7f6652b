"""Benchmark harness: suites, every method x setting x seed (local or Ray), resumable results
store, report and plots. One run is :func:`reweight_gym.runner.run`."""

from reweight_gym.benchmark.bench import build_specs, run_benchmark
from reweight_gym.benchmark.store import ResultsStore, load_rows
from reweight_gym.benchmark.suites import SUITE_NAMES, SUITES, select_settings

__all__ = ["SUITES", "SUITE_NAMES", "ResultsStore", "build_specs", "load_rows", "run_benchmark",
           "select_settings"]
