"""Design: what to design (request.py), how (settings.py), the one function that runs it (run.py) and the
records it returns (records.py). Import from the modules; this package imports nothing, so a command that
needs only `records` (is_design_fasta) does not load torch."""
