"""File formats and safe writing: FASTA and alignments (fasta, alignment), users' CSV tables (tables),
atomic writes (atomic), where a command may write (outputs, paths)."""
