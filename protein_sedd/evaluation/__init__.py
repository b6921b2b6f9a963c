"""Evaluation: likelihood bounds, folding, sequence metrics, reports."""
