"""Data: the amino-acid alphabet, FASTA reading, datasets and splits (import from the modules)."""
