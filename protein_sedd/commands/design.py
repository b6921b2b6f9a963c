"""`protein-sedd design`: sample new sequences (or infill fixed ones) from a trained checkpoint."""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from protein_sedd.commands.ranks import run_on_ranks
from protein_sedd.distributed import check_devices, distributed
from protein_sedd.errors import UserError


def _check_options(
    n, steps, seed, batch_size, predictor, out, length, length_range, template, fix, redesign
) -> None:
    from protein_sedd.diffusion.transitions import PREDICTORS

    if n < 1:
        raise UserError(f"--n {n}: the number of designs must be >= 1")
    if steps < 1:
        raise UserError(f"--steps {steps}: must be >= 1")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be >= 0")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: must be >= 1")
    if predictor not in PREDICTORS:
        raise UserError(f"--predictor {predictor!r}: choose {' or '.join(PREDICTORS)}")
    if out.is_dir():
        raise UserError(
            f"--out {out}: is a directory; give a FASTA file name such as {out / 'designs.fasta'}"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    if length is not None and length_range is not None:
        raise UserError("give one of --length or --length-range, not both")
    conditional = template is not None or fix is not None
    if conditional and (length is not None or length_range is not None):
        raise UserError(
            "--length/--length-range conflict with --template/--fix: the template fixes the length"
        )
    if template is not None and fix is not None:
        raise UserError("give one of --template or --fix/--redesign, not both")
    if fix is not None and redesign is None:
        raise UserError(
            "--fix needs --redesign RANGES (1-based, e.g. 10-30,55-60): which positions to design"
        )
    if redesign is not None and fix is None:
        raise UserError("--redesign needs --fix SEQ.fasta: the sequence whose ranges are redesigned")


def _conditional_start(template: str | None, fix: Path | None, redesign: str | None):
    """(start tokens, header note) for --template or --fix/--redesign; None without either."""
    from protein_sedd.data.design_starts import parse_ranges, parse_template, redesign_start
    from protein_sedd.data.fasta import read_fasta

    if template is not None:
        return parse_template(template), ""
    if fix is not None:
        record = read_fasta(fix)[0]
        ranges = parse_ranges(redesign, len(record.sequence), f"{fix} record {record.id!r}")
        note = f" source={record.id} redesign={','.join(f'{a}-{b}' for a, b in ranges)}"
        return redesign_start(record.sequence, ranges), note
    return None


def _lengths(n, length, length_range, config, generator) -> list[int]:
    from protein_sedd.data.design_starts import check_length, lengths_from_histogram, parse_length_range

    max_length = int(config.model.max_length)
    if length is not None:
        check_length(length, max_length, f"--length {length}")
        return [length] * n
    if length_range is not None:
        low, high = parse_length_range(length_range)
        for end in (low, high):
            check_length(end, max_length, f"--length-range {length_range}")
        import torch

        return torch.randint(low, high + 1, (n,), generator=generator).tolist()
    histogram = config.get("lengths", {}).get("histogram")
    if not histogram:
        raise UserError("the checkpoint records no training lengths; pass --length or --length-range")
    return lengths_from_histogram(list(histogram), n, max_length, generator)


def _starts(conditional, n, seed, length, length_range, config, template, fix):
    """(one start row per design, header note): the template or --fix row n times, or all-mask rows."""
    import torch

    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.data.design_starts import check_length
    from protein_sedd.diffusion.sampling import masked_starts

    if conditional is not None:
        start, note = conditional
        where = "--template" if template is not None else f"--fix {fix}"
        check_length(len(start), int(config.model.max_length), where)
        return [start] * n, note + f" designed={int((start == ALPHABET.mask_index).sum())}"
    length_generator = torch.Generator().manual_seed(seed)  # on the CPU: lengths never depend on --device
    return masked_starts(_lengths(n, length, length_range, config, length_generator)), ""


def _run_name(checkpoint_dir: Path) -> str:
    """The run directory's name (`runs/acyp-tiny/checkpoint` -> acyp-tiny), safe inside a FASTA header."""
    name = checkpoint_dir.parent.name if checkpoint_dir.name.startswith("checkpoint") else checkpoint_dir.name
    return "_".join(name.split()) or "checkpoint"


def _cache_note(model, graph, cache: bool) -> str:
    from protein_sedd.diffusion.sampling import cache_applies

    if cache_applies(model, graph):
        return "cache on" if cache else "cache off (--no-cache)"
    reason = "uniform graph" if graph.name == "uniform" else "time-conditioned network"
    return f"cache off (not applicable: {reason}, its output depends on the noise level)"


def _log(console: Console, text: str) -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)  # paths may hold '[', never wrapped


def design(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        help="Run directory (from `protein-sedd train`) or its checkpoint/. Default: the bundled ACYP model.",
    ),
    n: int = typer.Option(
        300, "--n", help="Number of designs (with --template/--fix: designs of that template)."
    ),
    steps: int = typer.Option(
        1024, "--steps", help="Tau-leaping steps from t=1 to t=eps, then a final denoise."
    ),
    out: Path = typer.Option(
        Path("designs.fasta"), "--out", help="Output FASTA (written whole, or not at all)."
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Random seed: same seed, device and batch size, same designs (whatever the number of ranks).",
    ),
    batch_size: int = typer.Option(128, "--batch-size", help="Sequences sampled together (bounds memory)."),
    predictor: str = typer.Option("analytic", "--predictor", help="analytic (Tweedie tau-leaping) or euler."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA if present), cpu or cuda."),
    length: int = typer.Option(None, "--length", help="Design sequences of exactly this length."),
    length_range: str = typer.Option(
        None,
        "--length-range",
        help="A:B, lengths uniform in A..B. Default: the training length distribution.",
    ),
    template: str = typer.Option(
        None, "--template", help="Fixed residues and '_' to design, e.g. MKV__G____R."
    ),
    fix: Path = typer.Option(
        None, "--fix", help="FASTA file; its first sequence is kept outside --redesign."
    ),
    redesign: str = typer.Option(
        None, "--redesign", help="1-based inclusive ranges of --fix to design: 10-30,55-60."
    ),
    cache: bool = typer.Option(
        True, "--cache/--no-cache", help="Re-run the network only on changed sequences (where it applies)."
    ),
    devices: int = typer.Option(
        1, "--devices", help="Share the batches among N local ranks (one per GPU; gloo processes on a CPU)."
    ),
) -> None:
    """Design protein sequences with a trained SEDD checkpoint; writes a FASTA file."""
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.data.fasta import write_fasta
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import build_noise
    from protein_sedd.diffusion.sampling import in_input_order, sample_batches
    from protein_sedd.training.checkpoint import load_checkpoint
    from protein_sedd.training.trainer import select_device

    _check_options(n, steps, seed, batch_size, predictor, out, length, length_range, template, fix, redesign)
    check_devices(devices, device)
    if devices > 1:
        run_on_ranks(ctx, devices)
    if checkpoint is None:
        from protein_sedd.pretrained import bundled_checkpoint

        checkpoint = bundled_checkpoint()
    conditional = _conditional_start(template, fix, redesign)
    requested = select_device(device)
    with distributed(requested) as ranks:
        dev = ranks.device(requested)
        loaded = load_checkpoint(checkpoint, dev)
        config, model = loaded.config, loaded.model
        if config.model.get("causal", False):
            raise UserError(
                f"{checkpoint}: the autoregressive baseline (model=ar) cannot design; use a SEDD checkpoint"
            )
        starts, note = _starts(conditional, n, seed, length, length_range, config, template, fix)
        graph = build_graph(config.graph.name, ALPHABET)
        noise = build_noise(config.noise)

        console = Console(stderr=True, quiet=not ranks.is_main)
        batches = math.ceil(n / batch_size)
        _log(
            console,
            f"design: {n} designs, {steps} steps, predictor {predictor}, {_cache_note(model, graph, cache)}, "
            f"device {dev.type}{_ranks_note(ranks.world_size, batches)}, checkpoint {loaded.path}",
        )
        own_batches = sum(ranks.owns(b) for b in range(batches))
        columns = [
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ]
        began = time.perf_counter()
        with Progress(*columns, console=console, disable=not ranks.is_main) as progress:
            label = "steps" if not ranks.enabled else "steps (rank 0)"
            step_task = progress.add_task(label, total=steps * own_batches)
            designed = list(
                sample_batches(
                    model,
                    graph,
                    noise,
                    starts,
                    steps=steps,
                    seed=seed,
                    predictor=predictor,
                    cache=cache,
                    batch_size=batch_size,
                    runs_batch=ranks.owns,
                    on_step=lambda: progress.advance(step_task),
                )
            )
        gathered = ranks.gather(designed)
    if gathered is None:
        return  # not rank 0: rank 0 writes
    elapsed = time.perf_counter() - began
    sequences, network_rows = in_input_order([batch for part in gathered for batch in part], n)
    header = "design_{:04d} length={} steps={} seed={} predictor={} checkpoint={}{}"
    name = _run_name(loaded.path)
    records = [
        (header.format(i, len(seq), steps, seed, predictor, name, note), seq)
        for i, seq in enumerate(sequences, start=1)
    ]
    write_fasta(out, records)
    _log(
        console,
        f"wrote {out}: {n} designs in {elapsed:.1f} s ({n / elapsed:.2f} designs/s); network evaluations: "
        f"{network_rows} sequence passes (uncached: {n * (steps + 1)})",
    )


def _ranks_note(world_size: int, batches: int) -> str:
    if world_size == 1:
        return ""
    note = f", {world_size} ranks sharing {batches} batches"
    if batches < world_size:
        note += f" ({world_size - batches} ranks idle: lower --batch-size to give every rank a batch)"
    return note
