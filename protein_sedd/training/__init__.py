"""Training: the loop, EMA weights, checkpoints, metrics."""
