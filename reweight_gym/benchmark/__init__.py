"""Benchmark harness: suites, runner (local or Ray), resumable results store, report, plots."""

from reweight_gym.benchmark.bench import build_specs, run_benchmark
from reweight_gym.benchmark.runner import RunSpec, execute
from reweight_gym.benchmark.store import ResultsStore, load_rows
from reweight_gym.benchmark.suites import SUITE_NAMES, SUITES, select_settings, setting_id

__all__ = ["SUITES", "SUITE_NAMES", "ResultsStore", "RunSpec", "build_specs", "execute",
           "load_rows", "run_benchmark", "select_settings", "setting_id"]
