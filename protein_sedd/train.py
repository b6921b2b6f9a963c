"""`python -m protein_sedd.train ...` = `protein-sedd train ...`; the entry point torchrun launches per rank:

torchrun --nproc-per-node 4 -m protein_sedd.train --dataset acyp model=small
"""

import sys

from protein_sedd.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
