"""Experiments over whole training runs: hyper-parameter search (Optuna) and repeats over seeds."""
