"""reweight-gym: training a classifier on biased data as a reinforcement-learning problem."""

__version__ = "0.1.0"
