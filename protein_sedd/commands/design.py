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
from protein_sedd.progress import log_line

if TYPE_CHECKING:
    from protein_sedd.data.design_request import DesignRequest
    from protein_sedd.diffusion.sampling_controls import SamplingControls


def _check_options(
    n, steps, seed, batch_size, predictor, sampling, out, length, length_range, template, fix, redesign
) -> tuple[DesignRequest, SamplingControls]:
    from protein_sedd.api import check_design_settings
    from protein_sedd.data.design_request import DesignRequest

    sampler, temperature, top_p = sampling
    controls = check_design_settings(
        n, steps, seed, batch_size, predictor, sampler=sampler, temperature=temperature, top_p=top_p,
        options=True,
    )  # fmt: skip
    if out.is_dir():
        raise UserError(
            f"--out {out}: is a directory; give a FASTA file name such as {out / 'designs.fasta'}"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    request = DesignRequest(n, length, length_range, template, fix, redesign)  # refuses conflicting choices
    return request, controls


def _cache_note(model, cache: bool) -> str:
    if model.cache_applies():
        return "cache on" if cache else "cache off (--no-cache)"
    reason = "uniform graph" if model.graph.name == "uniform" else "time-conditioned network"
    return f"cache off (not applicable: {reason}, its output depends on the noise level)"


def _sampler_note(model, predictor: str, sampler: str, cache: bool, guided: bool = False) -> str:
    if model.sampler_that_runs(predictor, sampler, guided) == "events":
        return "sampler events"  # one network pass per sequence and unmasking step: no cache needed
    if sampler == "steps":
        return f"sampler steps, {_cache_note(model, cache)}"
    if guided:
        reason = "a guide reweights the unmasking rates"
    elif predictor != "analytic":
        reason = f"{predictor} predictor"
    else:
        reason = "uniform graph" if model.graph.name == "uniform" else "time-conditioned network"
    return f"sampler steps (events do not apply: {reason}), {_cache_note(model, cache)}"


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
    sampler: str = typer.Option(
        "events",
        "--sampler",
        help="events: visit only the steps where positions unmask (analytic predictor, time-independent "
        "absorbing models; elsewhere the step loop runs: euler, the uniform graph, time-conditioned "
        "networks). steps: the step loop always. Same distribution, different draws for a seed.",
    ),
    temperature: float = typer.Option(
        1.0,
        "--temperature",
        help="> 0: divides the log-probabilities of the denoising distribution (1.0 = the model; lower = "
        "more conservative, higher = more diverse). Absorbing-graph models.",
    ),
    top_p: float = typer.Option(
        1.0,
        "--top-p",
        help="In (0, 1]: sample each residue from the smallest set of most likely residues holding this "
        "mass (1.0 = every residue). Absorbing-graph models.",
    ),
    guide: Path = typer.Option(
        None,
        "--guide",
        help="A guide folder from `protein-sedd train-guide`: steer the designs toward --target (predictor "
        "guidance; one guide forward + backward pass per sequence and step; the step loop runs).",
    ),
    target: float = typer.Option(
        None, "--target", help="With --guide: the label to steer toward (a class of the guide, or a value)."
    ),
    guide_scale: float = typer.Option(
        1.0,
        "--guide-scale",
        help="With --guide: the power gamma of the guide's likelihood ratios (1: conditioning on the label; "
        "larger: sharper; 0: no guidance, the unguided designs exactly).",
    ),
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
        True,
        "--cache/--no-cache",
        help="Step loop: re-run the network only on changed sequences (where it applies; the events "
        "sampler needs no cache).",
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
    from protein_sedd.diffusion.sampling_controls import check_controls_apply
    from protein_sedd.guidance.guide import guide_files
    from protein_sedd.guidance.reweighting import guidance_for

    request, controls = _check_options(
        n, steps, seed, batch_size, predictor, (sampler, temperature, top_p), out, length, length_range,
        template, fix, redesign,
    )  # fmt: skip
    inputs = [fix, *guide_files(guide)]
    check_output_file(
        out, "--out", inputs=inputs, overwrite=overwrite, is_own=is_design_fasta, command="design"
    )
    check_devices(devices, device)
    check_threads(threads)
    if devices > 1:
        run_on_ranks(ctx, devices)
    request.read_inputs()  # --template/--fix mistakes show before the checkpoint loads
    guide_read = _read_guide(guide, target, guide_scale)  # so do --guide's
    requested = select_device(device)
    with cpu_threads(threads) as n_threads, distributed(requested) as ranks:
        model = load(checkpoint, ranks.device(requested))
        model.check_can_design()
        check_controls_apply(model.graph, controls)
        guidance = guidance_for(model, guide_read, target, guide_scale, options=True)
        starts = request.starts(model.length_prior, seed)  # length mistakes show before any work
        console = Console(stderr=True, quiet=not ranks.is_main)
        batches = math.ceil(n / batch_size)
        log_line(
            console,
            f"design: {n} designs, {steps} steps, predictor {predictor}, "
            f"{_sampler_note(model, predictor, sampler, cache, guidance is not None)}{controls.note()}, "
            f"{_guide_note(guidance)}"
            f"device {model.device.type}, {n_threads} CPU thread{'s' * (n_threads > 1)}"
            f"{_ranks_note(ranks.world_size, batches)}, checkpoint {model.path}",
        )
        if request.draws_lengths:
            source = _length_source(model)
            log_line(console, f"lengths: drawn from the training length distribution of {source}")
        if model.focus is not None:
            log_line(
                console,
                f"representation focus_columns: each design is a row over the {len(model.focus.positions)} "
                "focus columns, written with its X (deletions) removed (aligned_length= in the header)",
            )
        designs = model.design_starts(
            starts,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            predictor=predictor,
            cache=cache,
            ranks=ranks,
            sampler=sampler,
            controls=controls,
            guidance=guidance,
        )
    if not ranks.is_main:
        return  # rank 0 writes
    designs.write_fasta(out)
    log_line(
        console,
        f"wrote {out}: {n} designs in {designs.seconds:.1f} s ({n / designs.seconds:.2f} designs/s); network "
        f"evaluations: {designs.network_passes} sequence passes (uncached: {n * (steps + 1)})"
        + (f"; guide passes (forward + backward): {designs.guide_passes}" if guidance is not None else ""),
    )


def _read_guide(guide: Path | None, target: float | None, scale: float):
    """The guide of --guide (on the CPU until the model's device is known), checked with its options."""
    from protein_sedd.guidance.guide import check_guidance, load_guide

    read = load_guide(guide, "cpu") if guide is not None else None
    check_guidance(read, target, scale, options=True)
    return read


def _guide_note(guidance) -> str:
    if guidance is None:
        return ""
    return f"guide {guidance.guide.path} toward {guidance.target:g} at scale {guidance.scale:g}, "


def _length_source(model) -> str:
    """Which training records the checkpoint's length histogram counts (a run from before the record:
    every training sequence)."""
    return (model.config.get("lengths") or {}).get("source") or "all training sequences"


def _ranks_note(world_size: int, batches: int) -> str:
    if world_size == 1:
        return ""
    note = f", {world_size} ranks sharing {batches} batches"
    if batches < world_size:
        note += f" ({world_size - batches} ranks idle: lower --batch-size to give every rank a batch)"
    return note
