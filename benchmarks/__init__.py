"""Measurement scripts (not part of the installed package): each writes its figures to
``benchmarks/results/`` and is run from the repository root as ``python -m benchmarks.<name>``.
What they share (where CIFAR-10 is, resumable JSON-lines logs, running seeds of a spec) is
:mod:`benchmarks.common`."""
