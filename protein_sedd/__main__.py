"""`python -m protein_sedd` runs the command line."""

from protein_sedd.cli import run

run()
