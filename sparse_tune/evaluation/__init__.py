"""Evaluation: metrics with pytrec_eval (as BEIR computes them), BEIR runs over checkpoints, reports."""
