"""Held-out likelihood of a checkpoint: -log p(x) <= -log p(length) - ELBO(x | length)."""

from __future__ import annotations

import math

import torch

from protein_sedd.baselines.autoregressive import dataset_nll
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import encode_all
from protein_sedd.data.fasta import FastaRecord
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.likelihood import LN2, dataset_negative_elbo
from protein_sedd.errors import UserError


def check_lengths(records: list[FastaRecord], max_length: int, source: str) -> None:
    for record in records:
        if len(record.sequence) > max_length:
            raise UserError(
                f"{source}: record {record.id!r} has {len(record.sequence)} residues, "
                f"longer than the model context ({max_length})"
            )


def sequence_bound(model, graph, tokens, *, t_samples: int, batch_size: int, seed: int, progress=None):
    """-log p(x | L) per sequence: exact for the autoregressive baseline, the ELBO bound for SEDD."""
    if model.config.causal:
        return dataset_nll(
            model,
            tokens,
            batch_size=batch_size,
            start_index=ALPHABET.mask_index,
            pad_index=ALPHABET.pad_index,
            progress=progress,
        )
    return dataset_negative_elbo(
        model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )


def likelihood_report(
    checkpoint, records: list[FastaRecord], *, t_samples: int, batch_size: int, seed: int, progress=None
):
    """Bound per sequence and in total; nats per sequence include the length term."""
    config = checkpoint.config
    model = checkpoint.model
    graph = build_graph(config.graph.name, ALPHABET)
    tokens = encode_all([r.sequence for r in records])
    device = next(model.parameters()).device
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )
    with autocast:
        elbo = sequence_bound(
            model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
        )
    lengths = torch.tensor([len(t) for t in tokens])
    length_nats = -LengthPrior.from_config(config).log_prob(lengths)
    total = elbo + length_nats
    n_residues = int(lengths.sum())
    n = len(records)
    nats_per_residue = float(total.sum()) / n_residues
    return {
        "nats_per_sequence": float(total.mean()),
        "bits_per_residue": nats_per_residue / LN2,
        "perplexity_bound": math.exp(nats_per_residue),
        "n_sequences": n,
        "n_residues": n_residues,
        "length_nats_per_sequence": float(length_nats.mean()),
        "standard_error_nats_per_sequence": float(total.std() / math.sqrt(n)) if n > 1 else 0.0,
        "exact": bool(model.config.causal),
        "t_samples": t_samples,
        "seed": seed,
        "per_sequence": [
            {"id": r.id, "length": len(r.sequence), "nats": float(v)}
            for r, v in zip(records, total, strict=True)
        ],
    }
