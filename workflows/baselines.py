"""Held-out bits/residue on the ACYP test split: SEDD checkpoints against the AR and unigram baselines.

    python workflows/baselines.py --checkpoint sedd=RUN1 --checkpoint ar=RUN2 [--t-samples 16] [--json OUT]

Every model is scored on the same split (recomputed from the first checkpoint's config), with the same
length term -log p(L); SEDD numbers are upper bounds (negative ELBO), AR and unigram numbers are exact.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from protein_sedd.baselines.unigram import unigram_log_probs, unigram_nll
from protein_sedd.data.prepare import prepare_splits, recorded_data_config
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.evaluation.likelihood_report import likelihood_report
from protein_sedd.io.atomic import write_json_atomic
from protein_sedd.model.trained import TrainedModel


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", action="append", required=True, help="NAME=RUN_DIR")
    parser.add_argument("--t-samples", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    named = dict(item.split("=", 1) for item in args.checkpoint)
    models = {name: TrainedModel.load(path) for name, path in named.items()}
    first = next(iter(models.values()))
    splits = prepare_splits(recorded_data_config(first.config), first.max_length, option=None).splits
    rows = {}
    for name, model in models.items():
        report = likelihood_report(model, splits.test, t_samples=args.t_samples, batch_size=128, seed=0)
        kind = "exact NLL" if report["exact"] else "-ELBO bound"
        keys = ("bits_per_residue", "nats_per_sequence", "perplexity_bound", "n_sequences", "n_residues")
        rows[name] = {"kind": kind, "steps": int(model.config.step), **{k: report[k] for k in keys}}
    log_probs = unigram_log_probs([r.sequence for r in splits.train])
    test_lengths = torch.tensor([len(r.sequence) for r in splits.test])
    length_nats = -first.length_prior.log_prob(test_lengths)
    nats = [
        unigram_nll(r.sequence, log_probs) + float(n) for r, n in zip(splits.test, length_nats, strict=True)
    ]
    residues = sum(len(r.sequence) for r in splits.test)
    rows["unigram"] = {
        "kind": "exact NLL", "steps": 0, "bits_per_residue": sum(nats) / residues / LN2,
        "nats_per_sequence": sum(nats) / len(nats), "perplexity_bound": math.exp(sum(nats) / residues),
        "n_sequences": len(nats), "n_residues": residues,
    }  # fmt: skip
    print("| model | kind | steps | bits/residue | nats/sequence | perplexity |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        print(
            f"| {name} | {row['kind']} | {row['steps']} | {row['bits_per_residue']:.3f} | "
            f"{row['nats_per_sequence']:.1f} | {row['perplexity_bound']:.2f} |"
        )
    if args.json:
        write_json_atomic(args.json, rows)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
