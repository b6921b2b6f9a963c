"""protein-sedd: protein sequence design with Score Entropy Discrete Diffusion."""

__version__ = "0.1.0"
