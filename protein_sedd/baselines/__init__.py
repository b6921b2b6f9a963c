"""Baselines to judge SEDD against: an autoregressive model on the same backbone, and a unigram model."""
