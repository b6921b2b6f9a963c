"""The autoregressive baseline: the DDiT backbone with causal attention, trained on next-residue prediction.

The input is the sequence shifted right by one with the mask token standing in as a start token, so
position i sees residues 0..i-1 and predicts residue i. Its NLL is exact, given the length (the end
embeddings tell every position how far the end is), so it compares with SEDD's bound on -log p(x | L).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from protein_sedd.data.batches import batches_in_order


def shifted_inputs(x0: torch.Tensor, start_index: int) -> torch.Tensor:
    start = torch.full_like(x0[:, :1], start_index)
    return torch.cat([start, x0[:, :-1]], dim=1)


def sequence_nll(
    model, x0: torch.Tensor, lengths: torch.Tensor, start_index: int, pad_index: int
) -> torch.Tensor:
    """Exact -log p(x | L) per sequence, [B] nats."""
    inputs = shifted_inputs(x0, start_index)
    inputs = torch.where(x0 == pad_index, pad_index, inputs)
    sigma = torch.zeros(x0.shape[0], device=x0.device)
    logits = model(inputs, sigma, lengths)[..., :pad_index]  # real residues only
    nll = F.cross_entropy(logits.transpose(1, 2), x0.clamp(max=pad_index - 1), reduction="none")
    return nll.masked_fill(x0 == pad_index, 0.0).sum(-1)


@torch.no_grad()
def dataset_nll(
    model, tokens: list[torch.Tensor], *, batch_size: int, start_index: int, pad_index: int, progress=None
):
    """Exact -log p(x | L) of every sequence, in input order."""
    device = next(model.parameters()).device
    out = torch.zeros(len(tokens), dtype=torch.float64)
    for index, x0, lengths in batches_in_order(tokens, batch_size, pad_index):
        out[index] = (
            sequence_nll(model, x0.to(device), lengths.to(device), start_index, pad_index).double().cpu()
        )
        if progress is not None:
            progress(len(index))
    return out
