"""Training with a corrupted context (BERT-style): does a context that cannot be copied help variant scores?

    python workflows/benchmarks/context_corruption.py --fraction 0.1 -- \
        --alignment FAMILY.a2m --dms SCAN.csv --work runs/corrupt10 --arms columns --steps 1000,1500 \
        --no-ar --no-potts --override model=family

Everything after `--` is `dms.py`'s own command line; this script only changes the training loss. The
absorbing forward process masks each position with probability 1 - exp(-sigma_bar); here a further
`fraction` of the positions it left unmasked (residues only: gaps and padding stay) is redrawn uniformly
from the 20 amino acids before the network sees them. The score entropy is still summed over the masked
positions, against the clean residues, so the network learns p(x_i | a noisy copy of the rest), as BERT's
random-token replacement does. The premise: with a few hundred effective sequences the masked marginal
follows the wild type's closest relatives, and a context that cannot be trusted residue for residue might
make the network lean on the family instead. Validation and scoring see clean sequences (the graph is only
wrapped inside the training loss). On PTEN it did not help (README: "A real scan: PTEN").
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import protein_sedd.training.step as step  # noqa: E402
from protein_sedd.data.alphabet import ALPHABET  # noqa: E402


class CorruptedContext:
    """`graph` whose `perturb` also redraws a `fraction` of the residues it left unmasked."""

    def __init__(self, graph, fraction: float):
        self.inner, self.fraction = graph, fraction

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def perturb(self, x0, sigma_bar, generator=None):
        x_t = self.inner.perturb(x0, sigma_bar, generator)
        gap = ALPHABET.n_residues - 1  # X, the gap of a column row; mask and pad come after it
        residue = (x_t != self.inner.mask_index) & (x0 < gap)
        draw = torch.rand(x0.shape, generator=generator, device=x0.device)
        fresh = torch.randint(0, gap, x0.shape, generator=generator, device=x0.device)
        return torch.where(residue & (draw < self.fraction), fresh, x_t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, required=True, help="unmasked residues redrawn, in [0, 1)")
    args, rest = parser.parse_known_args()
    if not 0 <= args.fraction < 1:
        parser.error("--fraction must lie in [0, 1)")
    original = step.score_entropy_loss

    def corrupted_loss(model, graph, *rest_args, **kwargs):
        return original(model, CorruptedContext(graph, args.fraction), *rest_args, **kwargs)

    step.score_entropy_loss = corrupted_loss
    sys.argv = ["dms.py", *[a for a in rest if a != "--"]]
    runpy.run_path(str(ROOT / "workflows" / "benchmarks" / "dms.py"), run_name="__main__")


if __name__ == "__main__":
    main()
