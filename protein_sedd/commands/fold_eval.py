"""`protein-sedd fold-eval`: fold designs with ESMFold, score pLDDT/pTM, write PDBs and a report.

The output folder and how a run resumes: `protein_sedd/evaluation/fold_designs.py`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from protein_sedd.commands.options import Device, Threads
from protein_sedd.evaluation import folding
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device

BEST_SHOWN = 10


def fold_eval(
    ctx: typer.Context,
    designs: Path = typer.Argument(
        ...,
        help="FASTA file of designs (e.g. designs.fasta from `design`; a path, not '-').",
        show_default=False,
    ),
    model: str = typer.Option(
        folding.DEFAULT_MODEL,
        "--model",
        help="ESMFold weights: a Hugging Face id already in the local HF cache, or a local folder "
        "(transformers) or .pt file (fair-esm). Nothing is downloaded.",
    ),
    backend: str = typer.Option(
        "transformers", "--backend", help="Folding implementation: transformers or fair-esm."
    ),
    plddt_threshold: float = typer.Option(
        70.0, "--plddt-threshold", help="A design succeeds when its mean pLDDT (0-100) is at least this."
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        help="Output folder (resumable). Default: <designs stem>_fold_eval next to the FASTA file.",
        show_default=False,
    ),
    device: Device = "auto",
    threads: Threads = 0,
    max_tokens_per_batch: int = typer.Option(
        2048,
        "--max-tokens-per-batch",
        help="Padded residues per batch (batch size x longest); batches are length-sorted.",
    ),
    chunk_size: int = typer.Option(
        64,
        "--chunk-size",
        help="Trunk attention chunk size: lower saves memory on long chains; 0 turns chunking off.",
    ),
    devices: int = typer.Option(
        1, "--devices", help="Share the batches among N local ranks (one per GPU; gloo processes on a CPU)."
    ),
    reference: str = typer.Option(
        None,
        "--reference",
        help="Also fold a natural baseline: sequences of this family (a FASTA file, or a dataset name: acyp) "
        "with the designs' lengths, whose success rate summary.json reports beside the designs'.",
        show_default=False,
    ),
    baseline_n: int = typer.Option(
        100, "--baseline-n", help="With --reference: how many naturals to fold (at most one per design)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start again: remove the folder's earlier fold-eval files (PDBs, results, summary, plot), or "
        "write into a non-empty folder that holds no fold-eval output (only fold-eval's files are replaced).",
    ),
) -> None:
    """Fold every design with ESMFold; report pLDDT, pTM and the success rate (mean pLDDT >= threshold)."""
    from protein_sedd.commands.ranks import run_on_ranks
    from protein_sedd.evaluation.fold_designs import (
        FoldSettings,
        check_lengths,
        fold_designs,
        natural_baseline,
    )
    from protein_sedd.evaluation.reports import print_tables, rows_table, summary_table
    from protein_sedd.io.fasta import read_fasta
    from protein_sedd.runtime.distributed import check_devices, distributed

    settings = FoldSettings(model, backend, plddt_threshold, max_tokens_per_batch, chunk_size)
    select_device(device)  # an unknown or absent device is refused before any file is read
    check_devices(devices, device)
    check_threads(threads)
    records = read_fasta(designs, unique_ids=True)
    check_lengths(designs, records)
    naturals = natural_baseline(reference, baseline_n, records)
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_fold_eval")
    if devices > 1:
        run_on_ranks(ctx, devices)
    requested = select_device(device)
    with cpu_threads(threads), distributed(requested) as ranks:
        done = fold_designs(
            designs, records, target, settings, naturals=naturals, overwrite=overwrite, ranks=ranks,
            device=ranks.device(requested),
        )  # fmt: skip
    if done is None:
        return  # rank 0 reports
    frame, summary = done
    note = summary.get("note")  # set for the toy ESMFold
    best = frame.sort_values("mean_plddt", ascending=False).head(BEST_SHOWN)
    print_tables(
        summary_table(f"fold-eval: {target}" + (f" ({note})" if note else ""), summary),
        rows_table(f"best {len(best)} designs", best, ["id", "length", "mean_plddt", "ptm", "success"]),
    )
