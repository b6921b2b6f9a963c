"""Data: the amino-acid alphabet, FASTA reading, datasets and splits."""

from protein_sedd.data.alphabet import ALPHABET, Alphabet
from protein_sedd.data.fasta import FastaRecord, read_fasta

__all__ = ["ALPHABET", "Alphabet", "FastaRecord", "read_fasta"]
