"""More context masked when scoring variants: does hiding some of the wild type's other positions help?

    python workflows/benchmarks/context_masking.py --checkpoint RUN --alignment FAMILY.a2m --dms SCAN.csv \
        --fractions 0,0.05,0.15,0.3 --draws 8

The masked marginal (`score-variants`) masks only the mutated positions and reads the model's conditional
there given the whole rest of the wild type. Here, besides those positions, a random `fraction` of the other
real positions is masked too (a fresh draw for each network pass, `--draws` passes per set of mutated
positions, seeded), and the variant's score is the mean over draws of log p(mutant | context) - log p(wild
type | context). Fraction 0 is the plain masked marginal. The network is wrapped, so every other part of
scoring (the wild type on the focus, focus columns) is `score_variants`'s own. Prints and writes, per
fraction, Spearman's rho with DMS_score over the scored variants with its bootstrap interval and the CPU
seconds.

`--mc-dropout` keeps the network's dropout active at every pass (Monte Carlo dropout: each pass is one draw of
the thinned network, and the mean over `--draws` passes approximates the score averaged over that implicit
ensemble, as Bayesian family models such as EVE average over their weights), fraction 0 included.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing


class ContextMasked(torch.nn.Module):
    """`network` with a random `fraction` of each row's real, unmasked positions masked before every pass."""

    def __init__(
        self, network, fraction: float, generator: torch.Generator, mask_index: int, pad_index: int,
        mc_dropout: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.inner, self.fraction, self.generator = network, fraction, generator
        self.mc_dropout = mc_dropout
        self.mask_index, self.pad_index = mask_index, pad_index
        self.config = network.config

    def forward(self, tokens, sigma_bar, lengths=None):
        self.inner.train(self.mc_dropout)  # scoring sets eval(); MC dropout needs the dropout layers on
        visible = (tokens != self.mask_index) & (tokens != self.pad_index)
        draw = torch.rand(tokens.shape, generator=self.generator) < self.fraction
        return self.inner(torch.where(visible & draw.to(tokens.device), self.mask_index, tokens), sigma_bar,
                          lengths)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument(
        "--alignment", type=Path, required=True, help="the family (its focus is the wild type)"
    )
    parser.add_argument("--dms", type=Path, required=True)
    parser.add_argument("--fractions", default="0,0.05,0.15,0.3")
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--mc-dropout", action="store_true", help="keep dropout active at every pass")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    import protein_sedd
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.evaluation.variants import read_variants, spearman_interval
    from protein_sedd.io.alignment import read_sequences

    torch.set_num_threads(args.threads)
    family = read_sequences(args.alignment)
    wildtype = family.records[family.focus_index].sequence
    variants = read_variants(args.dms)
    measured = variants["DMS_score"].to_numpy(dtype=float)
    model = protein_sedd.load(args.checkpoint, "cpu")
    network = model.network
    rows = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        began = resource.getrusage(resource.RUSAGE_SELF)
        draws = 1 if fraction == 0 and not args.mc_dropout else args.draws
        total = None
        for draw in range(draws):
            generator = torch.Generator().manual_seed(draw)
            torch.manual_seed(draw)  # the dropout masks
            model.network = ContextMasked(
                network, fraction, generator, ALPHABET.mask_index, ALPHABET.pad_index, args.mc_dropout
            )
            scores = model.score_variants(wildtype, variants)["score"].to_numpy()
            total = scores if total is None else total + scores
        model.network = network
        network.eval()
        scores = total / draws
        scored = np.isfinite(scores)
        rho = spearman_interval(scores[scored], measured[scored]).as_dict()
        end = resource.getrusage(resource.RUSAGE_SELF)
        cpu = end.ru_utime + end.ru_stime - began.ru_utime - began.ru_stime
        rows.append({"fraction": fraction, "draws": draws, "mc_dropout": args.mc_dropout, "rho": rho,
                     "cpu_seconds": round(cpu, 1)})  # fmt: skip
        interval = f"[{rho['low']:.3f}, {rho['high']:.3f}]"
        label = f"{draws} draws" + (", MC dropout" if args.mc_dropout else "")
        print(f"fraction {fraction:g} ({label}): rho {rho['rho']:.3f} {interval} (n={rho['n']}), "
              f"{cpu:.0f} CPU s", flush=True)  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
