"""The training objective: E_t[ sigma(t) * sum over positions of score entropy ] (nats per sequence)."""

from __future__ import annotations

import torch


def stratified_times(batch: int, low: float, generator=None, device=None) -> torch.Tensor:
    """One uniform offset spread over the batch: t_i = (u + i / B) mod 1, mapped into [low, 1].

    Covers [low, 1] evenly in every batch, which lowers the loss variance at no cost.
    """
    offset = torch.rand((), generator=generator, device=device)
    t = (offset + torch.arange(batch, device=device) / batch) % 1.0
    return low + (1 - low) * t


def score_entropy_loss(
    model,
    graph,
    noise,
    x0,
    lengths,
    generator=None,
    sampling_eps: float = 1e-3,
    time_conditioning: bool | None = None,
):
    """Monte Carlo estimate of the diffusion loss for each sequence in the batch, [B] nats.

    `time_conditioning` defaults to the model's own; pass it when `model` is a DDP wrapper.
    """
    if time_conditioning is None:
        time_conditioning = model.config.time_conditioning
    t = stratified_times(x0.shape[0], sampling_eps, generator, x0.device)
    sigma_bar, rate = noise.total(t), noise.rate(t)
    x_t = graph.perturb(x0, sigma_bar, generator)
    logits = model(x_t, sigma_bar, lengths)
    log_score = graph.log_score(logits, sigma_bar, time_conditioning)
    per_position = graph.score_entropy(log_score, sigma_bar, x_t, x0)
    return rate * per_position.sum(-1)
