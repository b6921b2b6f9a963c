"""`protein-sedd design`: sample new sequences (or infill fixed ones) from a trained checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from protein_sedd.api import is_design_fasta
from protein_sedd.commands.ranks import run_on_ranks
from protein_sedd.devices import THREADS_HELP, check_threads, cpu_threads, select_device
from protein_sedd.distributed import check_devices, distributed
from protein_sedd.errors import UserError
from protein_sedd.outputs import check_output_file

if TYPE_CHECKING:
    from protein_sedd.data.design_request import DesignRequest


def _check_options(
    n, steps, seed, batch_size, predictor, out, length, length_range, template, fix, redesign
) -> DesignRequest:
    from protein_sedd.api import check_design_settings
    from protein_sedd.data.design_request import DesignRequest

    check_design_settings(n, steps, seed, batch_size, predictor, options=True)
    if out.is_dir():
        raise UserError(
            f"--out {out}: is a directory; give a FASTA file name such as {out / 'designs.fasta'}"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    return DesignRequest(n, length, length_range, template, fix, redesign)  # refuses conflicting choices


def _cache_note(model, cache: bool) -> str:
    if model.cache_applies():
        return "cache on" if cache else "cache off (--no-cache)"
    reason = "uniform graph" if model.graph.name == "uniform" else "time-conditioned network"
    return f"cache off (not applicable: {reason}, its output depends on the noise level)"


def _log(console: Console, text: str) -> None:
    console.print(text, soft_wrap=True, markup=False, highlight=False)  # paths may hold '[', never wrapped


def design(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(
        None,
        "--checkpoint",
        help="Run directory (from `protein-sedd train`), its checkpoint/, or a bundled model's name "
        "(acyp-tiny). Default: the bundled ACYP model.",
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
    threads: int = typer.Option(0, "--threads", help=THREADS_HELP),
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
        None, "--fix", help="FASTA file (a path, not '-'); its first sequence is kept outside --redesign."
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
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace --out even when it is not an earlier design FASTA (never an input or checkpoint file).",
    ),
) -> None:
    """Design protein sequences with a trained SEDD checkpoint; writes a FASTA file."""
    from protein_sedd.api import load

    request = _check_options(
        n, steps, seed, batch_size, predictor, out, length, length_range, template, fix, redesign
    )
    check_output_file(
        out, "--out", inputs=[fix], overwrite=overwrite, is_own=is_design_fasta, command="design"
    )
    check_devices(devices, device)
    check_threads(threads)
    if devices > 1:
        run_on_ranks(ctx, devices)
    request.read_inputs()  # --template/--fix mistakes show before the checkpoint loads
    requested = select_device(device)
    with cpu_threads(threads) as n_threads, distributed(requested) as ranks:
        model = load(checkpoint, ranks.device(requested))
        model.check_can_design()
        starts = request.starts(model.length_prior, seed)  # length mistakes show before any work
        console = Console(stderr=True, quiet=not ranks.is_main)
        batches = math.ceil(n / batch_size)
        _log(
            console,
            f"design: {n} designs, {steps} steps, predictor {predictor}, {_cache_note(model, cache)}, "
            f"device {model.device.type}, {n_threads} CPU thread{'s' * (n_threads > 1)}"
            f"{_ranks_note(ranks.world_size, batches)}, checkpoint {model.path}",
        )
        designs = model.design_starts(
            starts,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            predictor=predictor,
            cache=cache,
            ranks=ranks,
        )
    if not ranks.is_main:
        return  # rank 0 writes
    designs.write_fasta(out)
    _log(
        console,
        f"wrote {out}: {n} designs in {designs.seconds:.1f} s ({n / designs.seconds:.2f} designs/s); network "
        f"evaluations: {designs.network_passes} sequence passes (uncached: {n * (steps + 1)})",
    )


def _ranks_note(world_size: int, batches: int) -> str:
    if world_size == 1:
        return ""
    note = f", {world_size} ranks sharing {batches} batches"
    if batches < world_size:
        note += f" ({world_size - batches} ranks idle: lower --batch-size to give every rank a batch)"
    return note
