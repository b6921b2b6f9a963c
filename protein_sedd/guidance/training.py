"""Training a guide on noised sequences: the diffusion's own forward process, then a label loss.

Each step draws a batch of labelled sequences x_0, a time t ~ U(0, 1) per sequence, masks every position
with probability m = 1 - exp(-sigma_bar(t)) (the absorbing graph's `perturb` under the diffusion model's
noise schedule), and fits p(y | x_t, m) by maximum likelihood: cross-entropy for a classifier, the
Gaussian negative log-likelihood (mean and variance) of the standardised label for a regressor. So the
guide learns what the label looks like at every noise level the sampler visits, down to the all-mask start
(where it can only learn the label's marginal).

A held-out share of the labelled sequences measures it at m = 0, 0.5 and 0.9: accuracy for a classifier
(beside the majority class's share), the root mean squared error in label units for a regressor (beside
the labels' standard deviation).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_SEED, MAX_TRAIN_STEPS, check_int
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import encode_all, pad_batch
from protein_sedd.errors import UserError
from protein_sedd.guidance.guide import Guide
from protein_sedd.guidance.labels import Labelled
from protein_sedd.guidance.network import GuideConfig, GuideNet

REPORT_MASK_FRACTIONS = (0.0, 0.5, 0.9)
MAX_VALID_FRACTION = 0.5


def check_guide_settings(steps: int, batch_size: int, lr: float, seed: int, valid_fraction: float) -> None:
    """A guide run's numbers within their bounds; messages name the parameter (`UserError.field`)."""
    check_int("steps", steps, 1, MAX_TRAIN_STEPS)
    check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    check_int("seed", seed, 0, MAX_SEED)
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= 1):
        raise UserError(f"{{lr}} {lr}: must be a learning rate in (0, 1]", field="lr")
    fraction = valid_fraction
    if isinstance(fraction, bool) or not (
        isinstance(fraction, (int, float)) and 0 <= fraction <= MAX_VALID_FRACTION
    ):
        raise UserError(
            f"{{valid_fraction}} {valid_fraction}: must be in 0..{MAX_VALID_FRACTION}", field="valid_fraction"
        )


def _split(n: int, valid_fraction: float, generator: torch.Generator) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    held = int(n * valid_fraction)
    return order[held:], order[:held]


def _noised(tokens, graph, noise, t: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, m): the forward process at times t [B]; pads are never masked."""
    sigma_bar = noise.total(t)
    return graph.perturb(tokens, sigma_bar, generator), -torch.expm1(-sigma_bar)


def guide_inputs(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One-hot float inputs [B, L, V] of token rows (the guide's embedding is linear in them)."""
    return F.one_hot(tokens, vocab_size).float()


def check_model_can_guide(model) -> None:
    """Guidance reweights the absorbing graph's unmasking rates: a SEDD model on that graph is needed."""
    model.check_can_design()
    if not model.graph.has_mask:
        raise UserError(
            f"{model.path}: guidance needs an absorbing-graph model (this one is {model.graph.name}); "
            "train one with graph=absorbing"
        )


def check_guide_fits(model, labelled: Labelled) -> None:
    """The model can be guided, and every labelled sequence fits its context."""
    check_model_can_guide(model)
    longest = max(range(len(labelled.sequences)), key=lambda i: len(labelled.sequences[i]))
    max_length = int(model.config.model.max_length)
    if len(labelled.sequences[longest]) > max_length:
        raise UserError(
            f"{labelled.where[longest]}: {len(labelled.sequences[longest])} residues, longer than the model "
            f"context ({max_length}) of {model.path}"
        )


def train_guide(model, labelled: Labelled, task: str = "auto", **settings) -> Guide:
    """A guide for steering `model` (a ProteinSEDD): `fit_guide` under its graph and noise schedule.

    `settings` are `fit_guide`'s keywords. The guide records the model it was trained against.
    """
    from omegaconf import OmegaConf

    from protein_sedd.guidance.labels import task_of

    check_guide_fits(model, labelled)
    task = task_of(labelled.labels, task)
    guide = fit_guide(labelled, task, model.graph, model.noise, **settings)
    guide.record.update(
        checkpoint=str(model.path),
        model=model.name,
        graph=model.graph.name,
        noise=OmegaConf.to_container(model.config.noise),
    )
    return guide


def fit_guide(
    labelled: Labelled,
    task: str,
    graph,
    noise,
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    valid_fraction: float = 0.2,
    config: GuideConfig | None = None,
    device: torch.device | str = "cpu",
    on_step: Callable[[], None] | None = None,
) -> Guide:
    """A guide for `labelled` (task 'classify' or 'regress', see labels.task_of) and its report.

    `graph` must be absorbing; `noise` is the diffusion model's schedule. Repeatable for a seed on a device.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(labelled.labels, dtype=torch.float64)
    classes = sorted(set(labelled.labels)) if task == "classify" else []
    config = config or GuideConfig()
    config.vocab_size = ALPHABET.size
    config.n_outputs = len(classes) if task == "classify" else 2
    with torch.random.fork_rng(
        devices=[]
    ):  # the initial weights from the seed, the caller's stream untouched
        torch.manual_seed(seed)
        network = GuideNet(config).to(device)
    guide = Guide(
        network,
        task,
        classes,
        float(labels.mean()) if task == "regress" else 0.0,
        float(labels.std()) if task == "regress" else 1.0,
    )
    targets = (
        torch.tensor([classes.index(v) for v in labelled.labels]) if task == "classify" else labels.float()
    )
    tokens = encode_all(labelled.sequences)
    train, valid = _split(len(tokens), valid_fraction, generator)
    optimiser = torch.optim.AdamW(guide.network.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    losses = []
    guide.network.train()
    for _ in range(steps):
        picked = [train[i] for i in torch.randint(len(train), (batch_size,), generator=generator).tolist()]
        x0, lengths = pad_batch([tokens[i] for i in picked], ALPHABET.pad_index)
        x_t, m = _noised(x0, graph, noise, torch.rand(len(picked), generator=generator, dtype=torch.float64),
                         generator)  # fmt: skip
        outputs = guide.network(
            guide_inputs(x_t, config.vocab_size).to(device), m.to(device), lengths.to(device)
        )
        loss = _loss(guide, outputs, targets[picked].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(guide.network.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step()
    guide.network.eval()
    if not all(bool(torch.isfinite(p).all()) for p in guide.network.parameters()) or not all(
        map(math.isfinite, losses)
    ):
        raise UserError(
            "train-guide: training diverged (the loss or the guide's weights are not finite); lower {lr} "
            f"(now {lr:g}) or rescale the labels; nothing was written",
            field="lr",
        )
    guide.record["training"] = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "n_train": len(train),
        "n_valid": len(valid),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "parameters": guide.network.num_parameters(),
        "valid": held_out_report(guide, [tokens[i] for i in valid], labels[valid], graph, seed, device),
    }
    return guide


def _loss(guide: Guide, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if guide.task == "classify":
        return F.cross_entropy(outputs, targets)
    return -guide.gaussian_log_likelihood(outputs, targets).mean()


@torch.no_grad()
def held_out_report(guide: Guide, tokens, labels: torch.Tensor, graph, seed: int, device) -> dict | None:
    """Accuracy or RMSE on held-out sequences at the mask fractions REPORT_MASK_FRACTIONS (None if none)."""
    if not tokens:
        return None
    x0, lengths = pad_batch(tokens, ALPHABET.pad_index)
    report = {"n": len(tokens)}
    if guide.task == "classify":
        shares = [float((labels == c).double().mean()) for c in guide.classes]
        report["majority_class_share"] = max(shares)
    else:
        report["label_std"] = float(labels.std()) if len(tokens) > 1 else 0.0
    for m in REPORT_MASK_FRACTIONS:
        generator = torch.Generator().manual_seed(seed + 1)
        sigma_bar = torch.full((len(tokens),), -math.log1p(-m), dtype=torch.float64)
        x_t = graph.perturb(x0, sigma_bar, generator)
        fraction = torch.full((len(tokens),), m)
        inputs = guide_inputs(x_t, guide.network.config.vocab_size).to(device)
        outputs = guide.network(inputs, fraction.to(device), lengths.to(device)).cpu()
        if guide.task == "classify":
            predicted = torch.tensor(guide.classes, dtype=torch.float64)[outputs.argmax(-1)]
            report[f"accuracy_at_mask_{m:g}"] = float((predicted == labels).double().mean())
        else:
            mean = outputs[:, 0].double() * guide.label_std + guide.label_mean
            report[f"rmse_at_mask_{m:g}"] = float(((mean - labels) ** 2).mean().sqrt())
    return report
