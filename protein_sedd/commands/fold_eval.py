"""`protein-sedd fold-eval`: fold designs with ESMFold, score pLDDT/pTM, write PDBs and a report.

Output folder: one `<id>.pdb` per design (B-factor = per-residue pLDDT), `results.csv`, `summary.json`,
`plddt_histogram.png`. A new folder is filled under a hidden `.<name>.partial` sibling and renamed into place
at the end, so it never appears half-written. `results.csv` and `summary.json` are rewritten after every
batch, so an interrupted run resumes where it stopped (from the `.partial` folder, or from a finished folder
when designs are added). A design counts as done when its id, sequence and PDB file are all there; success is
recomputed from the stored mean pLDDT with the current threshold: a new `--plddt-threshold` refolds nothing.
Earlier results of designs that are not in the FASTA file (another designs file, or a changed sequence) are
never dropped silently: the run is refused unless `--overwrite` says to start again. The folder is locked
while a run writes it (`protein_sedd.io.outputs`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from protein_sedd.commands.options import Device, Threads
from protein_sedd.config.limits import MAX_CHUNK_SIZE, MAX_DESIGNS, MAX_TOKENS_PER_BATCH, check_int
from protein_sedd.errors import UserError
from protein_sedd.evaluation import folding
from protein_sedd.io.outputs import OutputFolder
from protein_sedd.runtime.devices import check_threads, cpu_threads, select_device

if TYPE_CHECKING:
    from protein_sedd.evaluation.fold_results import FoldResults
    from protein_sedd.io.fasta import FastaRecord

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
    from protein_sedd.evaluation.fold_results import REPORT_FILES, FoldResults, model_label, pdb_names
    from protein_sedd.io.fasta import read_fasta
    from protein_sedd.runtime.distributed import check_devices, distributed

    _check_options(backend, plddt_threshold, device, max_tokens_per_batch, chunk_size)
    check_devices(devices, device)
    check_threads(threads)
    records = read_fasta(designs, unique_ids=True)
    _check_lengths(designs, records)
    file_names = pdb_names(designs, records)
    naturals = _natural_baseline(reference, baseline_n, records)
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_fold_eval")
    if devices > 1:
        run_on_ranks(ctx, devices)
    requested = select_device(device)
    claimed: list[OutputFolder] = []  # rank 0's locked output folder, released however the run ends
    try:
        with cpu_threads(threads), distributed(requested) as ranks:

            def earlier_results() -> FoldResults:  # rank 0 alone reads and writes the output folder
                folder = _claim_output(target, designs, overwrite)
                claimed.append(folder)
                results = FoldResults(
                    records, file_names, folder.path, plddt_threshold, model_label(model), backend
                )
                results.load_previous(designs, overwrite)
                folder.record(REPORT_FILES + list(file_names.values()))  # before any of them is written
                return results

            results = ranks.from_main(earlier_results)
            todo = [r for r in records if not results.has(r)]
            baseline_done = ranks.from_main(lambda: results.load_baseline(naturals))
            backend_impl = None
            if todo or not baseline_done:
                backend_impl = folding.load_backend(
                    backend, model, ranks.device(requested), chunk_size or None
                )
            if todo:
                _fold(backend_impl, todo, results, max_tokens_per_batch, ranks)
            if not baseline_done and ranks.is_main:  # a small sample: rank 0 folds it alone
                folded = dict(
                    pair
                    for indices, designs_ in folding.fold_in_batches(
                        backend_impl, naturals, max_tokens_per_batch
                    )
                    for pair in zip(indices, designs_, strict=True)
                )
                results.set_baseline(naturals, [folded[i] for i in range(len(naturals))])
        if not ranks.is_main:
            return
        _finish(claimed[0], target, results, plddt_threshold)
    finally:
        for folder in claimed:
            folder.__exit__(*sys.exc_info())


def _natural_baseline(reference: str | None, n: int, records: list[FastaRecord]) -> list[str]:
    """Up to `n` naturals with the lengths of a seeded sample of the designs (none without --reference)."""
    if reference is None:
        return []
    import random

    from protein_sedd.data.datasets import resolve_reference
    from protein_sedd.evaluation.baseline import length_matched
    from protein_sedd.io.fasta import read_fasta

    check_int("baseline_n", n, 1, MAX_DESIGNS)
    designed = {r.sequence for r in records}
    pool = [r.sequence for r in read_fasta(resolve_reference(reference), unique_ids=False)]
    pool = [s for s in pool if s not in designed and len(s) <= folding.MAX_FOLD_LENGTH and s.strip("X")]
    lengths = [len(r.sequence) for r in records]
    sample = random.Random(0).sample(lengths, min(n, len(lengths)))
    return length_matched(pool, sample)


def _claim_output(target: Path, designs: Path, overwrite: bool) -> OutputFolder:
    """The folder to fill, locked: the target itself when it holds earlier results, else a `.partial` one."""
    folder = OutputFolder(target, "fold-eval", "--out-dir")
    state = folder.check(inputs=[designs], overwrite=overwrite)
    if state in ("new", "empty"):
        folder = OutputFolder(target.with_name(f".{target.name}.partial"), "fold-eval", "--out-dir")
        folder.check(inputs=[designs])  # an interrupted earlier run's, or new
    folder.lock()
    if overwrite:
        folder.remove_own_files()
    return folder


def _finish(folder: OutputFolder, target: Path, results: FoldResults, plddt_threshold: float) -> None:
    from protein_sedd.evaluation.reports import histogram_png, print_tables, rows_table, summary_table

    frame, summary = results.save()
    note = summary.get("note")  # set for the toy ESMFold
    histogram_png(
        folder.path / "plddt_histogram.png",
        frame["mean_plddt"].tolist(),
        title=f"ESMFold mean pLDDT of {len(frame)} designs" + (f"\n{note}" if note else ""),
        xlabel="mean pLDDT",
        threshold=plddt_threshold,
        threshold_label=f"success threshold {plddt_threshold:g}",
        value_range=(0.0, 100.0),
        bins=40,
    )
    if folder.path != target:
        folder.move_to(target)
    best = frame.sort_values("mean_plddt", ascending=False).head(BEST_SHOWN)
    print_tables(
        summary_table(f"fold-eval: {target}" + (f" ({note})" if note else ""), summary),
        rows_table(f"best {len(best)} designs", best, ["id", "length", "mean_plddt", "ptm", "success"]),
    )


def _check_options(backend: str, threshold: float, device: str, max_tokens: int, chunk_size: int) -> None:
    if backend not in folding.BACKENDS:
        raise UserError(f"--backend {backend!r}: expected one of {', '.join(folding.BACKENDS)}")
    if not 0.0 <= threshold <= 100.0:  # also rejects NaN
        raise UserError(
            f"--plddt-threshold {threshold}: pLDDT is on a 0-100 scale, give a value in that range"
        )
    select_device(device)  # an unknown or absent device is refused before any file is read
    check_int("max_tokens_per_batch", max_tokens, 1, MAX_TOKENS_PER_BATCH)
    check_int("chunk_size", chunk_size, 0, MAX_CHUNK_SIZE)  # 0: chunking off


def _check_lengths(path: Path, records: list[FastaRecord]) -> None:
    for record in records:
        if not record.sequence.strip("X"):  # ESMFold places no atom for an unknown residue
            raise UserError(
                f"{path}: record {record.id!r} is all X (unknown residues); it has no structure to fold"
            )
        if len(record.sequence) > folding.MAX_FOLD_LENGTH:
            raise UserError(
                f"{path}: record {record.id!r} has {len(record.sequence)} residues; ESMFold folds at most "
                f"{folding.MAX_FOLD_LENGTH}"
            )


def _fold(backend_impl, todo: list[FastaRecord], results: FoldResults, max_tokens: int, ranks) -> None:
    """Fold in rounds of one length-sorted batch per rank; rank 0 gathers each round and saves it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    sequences = [r.sequence for r in todo]
    batches = folding.plan_batches([len(s) for s in sequences], max_tokens)
    columns = (TextColumn("folding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    console = Console(stderr=True, quiet=not ranks.is_main)
    with Progress(*columns, console=console, transient=True, disable=not ranks.is_main) as progress:
        task = progress.add_task("fold", total=len(todo))
        for first in range(0, len(batches), ranks.world_size):
            mine = first + ranks.rank
            folded = (
                list(folding.fold_batch(backend_impl, sequences, batches[mine]))
                if mine < len(batches)
                else []
            )
            for part in ranks.gather(folded) or []:  # None on ranks other than 0
                for indices, designs in part:
                    for index, design in zip(indices, designs, strict=True):
                        results.add(todo[index], design)
                    progress.advance(task, len(indices))
            if ranks.is_main:
                results.save()  # after every round: an interrupted run resumes from here
