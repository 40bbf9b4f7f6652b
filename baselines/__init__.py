"""Weighting baselines."""
