"""`protein-sedd design`: sample new sequences (or infill fixed ones) from a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.commands.options import Checkpoint, Device, Threads
from protein_sedd.design.records import is_design_fasta
from protein_sedd.errors import UserError
from protein_sedd.io.outputs import check_output_file
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device
from protein_sedd.runtime.progress import log_line


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise UserError(
            f"--out {out}: is a directory; give a FASTA file name such as {out / 'designs.fasta'}"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")


def parse_steps(text: str) -> int | str:
    """--steps: a whole number, or 'exact'; anything else is left for DesignSettings to refuse by name."""
    try:
        return int(text)
    except ValueError:
        return text.strip().lower()


def _uncached(n: int, steps: int | str) -> str:
    return "one per designed position" if steps == "exact" else f"uncached: {n * (steps + 1)}"


def design(
    ctx: typer.Context,
    checkpoint: Checkpoint = None,
    n: int = typer.Option(
        300, "--n", help="Number of designs (with --template/--fix: designs of that template)."
    ),
    steps: str = typer.Option(
        "1024",
        "--steps",
        help="Tau-leaping steps from t=1 to t=eps, then a final denoise; or 'exact': the event sampler's "
        "limit, one position per event (the exact reverse process, no residues drawn jointly; about the "
        "cost of 1024 steps at 100 residues, and the exact choice for long proteins).",
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
        "guidance; see --guidance).",
    ),
    target: float = typer.Option(
        None, "--target", help="With --guide: the label to steer toward (a class of the guide, or a value)."
    ),
    guide_scale: float = typer.Option(
        1.0,
        "--guide-scale",
        help="With --guide: the power gamma of the guide's likelihood ratios (0: no guidance, the unguided "
        "designs exactly). With --guidance exact, 1 conditions on the label (as the guide judges it); with "
        "taylor, 1 steers well short of that (on a 12-residue motif carried by 29% unguided: 0.72 at 1, "
        "0.86 at 2, 0.94 at 4, where exact gives 0.89 at 1): a strength to tune.",
    ),
    target_rate: float = typer.Option(
        None,
        "--target-rate",
        help="With a classifier --guide, instead of --guide-scale: the share of designs the guide should "
        "call --target (e.g. 0.9). The smallest scale reaching it on pilot batches of 32 designs (their own "
        "seed) is chosen, logged and written in the headers.",
    ),
    guidance: str = typer.Option(
        "taylor",
        "--guidance",
        help="With --guide: how the likelihood ratios are computed. taylor: the first-order expansion, one "
        "guide forward + backward pass per sequence and step (the step loop runs). exact: the guide on every "
        "one-residue change; with the events sampler 22 guide passes per unmasking event (about 22 x length "
        "per design), in the step loop 21 per masked position and step.",
    ),
    device: Device = "auto",
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="What the network computes in: auto (bf16 on GPUs and on CPUs with AMX or AVX512-BF16, else "
        "fp32), bf16 or fp32. The same seed gives other designs in each (from the same distribution).",
    ),
    threads: Threads = 0,
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
    from rich.console import Console

    from protein_sedd.api import load
    from protein_sedd.cli import flag
    from protein_sedd.commands.ranks import run_on_ranks
    from protein_sedd.design.request import DesignRequest
    from protein_sedd.design.run import DesignRun
    from protein_sedd.design.settings import DesignSettings
    from protein_sedd.guidance.guide import guide_files
    from protein_sedd.guidance.reweighting import Guidance
    from protein_sedd.runtime.distributed import check_devices, distributed

    settings = DesignSettings(
        parse_steps(steps), seed, batch_size, predictor, sampler, temperature, top_p, cache, precision
    )
    _check_out(out)
    request = DesignRequest(n, length, length_range, template, fix, redesign)  # reads --template, --fix
    check_output_file(
        out, "--out", inputs=[fix, *guide_files(guide)], overwrite=overwrite, is_own=is_design_fasta,
        command="design",
    )  # fmt: skip
    check_devices(devices, device)
    check_threads(threads)
    if devices > 1:
        run_on_ranks(ctx, devices)
    # --guide mistakes show before the model loads
    guided = Guidance(guide, target, guide_scale, guidance, target_rate)
    requested = select_device(device)
    with cpu_threads(threads) as n_threads, distributed(requested) as ranks:
        model = load(checkpoint, ranks.device(requested))
        plan = DesignRun(model, request, settings, guided)  # checks what depends on the model
        console = Console(stderr=True, quiet=not ranks.is_main)
        for line in plan.describe(n_threads, ranks.world_size, spell=flag):
            log_line(console, line)
        designs = plan.run(ranks)
    if not ranks.is_main:
        return  # rank 0 writes
    designs.write_fasta(out)
    log_line(
        console,
        f"wrote {out}: {n} designs in {designs.seconds:.1f} s ({n / designs.seconds:.2f} designs/s); network "
        f"evaluations: {designs.network_passes} sequence passes ({_uncached(n, settings.steps)})"
        + (f"; guide passes ({plan.rates.method.name}): {designs.guide_passes}" if plan.rates else ""),
    )
