"""Held-out likelihood of a checkpoint: -log p(x) <= -log p(length) - ELBO(x | length)."""

from __future__ import annotations

import math

import torch

from protein_sedd.baselines.autoregressive import dataset_nll
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import encode_all
from protein_sedd.data.fasta import FastaRecord
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.devices import inference_autocast
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.likelihood import LN2, dataset_negative_elbo_with_error
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
    return sequence_bound_with_error(
        model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )[0]


def sequence_bound_with_error(
    model, graph, tokens, *, t_samples: int, batch_size: int, seed: int, progress=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-log p(x | L), its Monte Carlo standard error) per sequence in nats; the error is 0 when exact."""
    if model.config.causal:
        nll = dataset_nll(
            model,
            tokens,
            batch_size=batch_size,
            start_index=ALPHABET.mask_index,
            pad_index=ALPHABET.pad_index,
            progress=progress,
        )
        return nll, torch.zeros_like(nll)
    return dataset_negative_elbo_with_error(
        model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )


def sequence_scores(
    model,
    graph,
    length_prior: LengthPrior,
    tokens,
    *,
    t_samples: int,
    batch_size: int,
    seed: int,
    progress=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(-log p(x) per sequence in nats, length term -log p(L) included; its Monte Carlo standard error).

    An upper bound (the negative ELBO) for SEDD, exact for the autoregressive baseline (error 0). bf16
    autocast on CUDA. The same seed and batch size give the same numbers.
    """
    with torch.no_grad(), inference_autocast(next(model.parameters()).device):
        bound, error = sequence_bound_with_error(
            model, graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
        )
    lengths = torch.tensor([len(t) for t in tokens])
    return bound - length_prior.log_prob(lengths), error


def likelihood_report(
    checkpoint, records: list[FastaRecord], *, t_samples: int, batch_size: int, seed: int, progress=None
):
    """Bound per sequence and in total; nats per sequence include the length term."""
    config = checkpoint.config
    model = checkpoint.model
    graph = build_graph(config.graph.name, ALPHABET)
    tokens = encode_all([r.sequence for r in records])
    prior = LengthPrior.from_config(config)
    total, error = sequence_scores(
        model, graph, prior, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
    )
    lengths = torch.tensor([len(t) for t in tokens])
    length_nats = -prior.log_prob(lengths)
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
            {
                "id": r.id,
                "length": len(r.sequence),
                "nats": float(v),
                "bits_per_residue": float(v) / len(r.sequence) / LN2,
                "standard_error_nats": float(e),
            }
            for r, v, e in zip(records, total, error, strict=True)
        ],
    }
