"""`python -m protein_sedd.train ...` = `protein-sedd train ...`, kept for launch scripts written that way;
`torchrun ... -m protein_sedd train ...` is the same. (The Python function is `protein_sedd.train`, in api.py:
running this file as a script never replaces it.)
"""

import sys

from protein_sedd.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
