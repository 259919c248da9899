"""Scoring predictions: metrics, baselines, the evaluation of a checkpoint and its report."""
