"""Fold a designs file with ESMFold into a resumable output folder.

The folder gets one `<id>.pdb` per design (B-factor = per-residue pLDDT), `results.csv`, `summary.json` and
`plddt_histogram.png`. A new folder is filled under a hidden `.<name>.partial` sibling and renamed into
place at the end, so it never appears half-written. `results.csv` and `summary.json` are rewritten after
every round of batches, so an interrupted run resumes where it stopped (from the `.partial` folder, or from a
finished folder when designs are added). A design counts as done when its id, sequence and PDB file are all
there; success is recomputed from the stored mean pLDDT with the current threshold: a new threshold refolds
nothing. Earlier results of designs that are not in the FASTA file (another designs file, or a changed
sequence) are never dropped silently: the run is refused unless `overwrite` says to start again. The folder
is locked while a run writes it (`protein_sedd.io.outputs`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from protein_sedd.config.limits import MAX_CHUNK_SIZE, MAX_DESIGNS, MAX_TOKENS_PER_BATCH, check_int
from protein_sedd.errors import UserError
from protein_sedd.evaluation import folding
from protein_sedd.io.outputs import OutputFolder

if TYPE_CHECKING:
    import pandas as pd

    from protein_sedd.evaluation.fold_results import FoldResults
    from protein_sedd.io.fasta import FastaRecord


@dataclass(frozen=True)
class FoldSettings:
    """How to fold: the weights (`model`), the implementation, the success threshold and the batching."""

    model: str = folding.DEFAULT_MODEL
    backend: str = "transformers"
    plddt_threshold: float = 70.0
    max_tokens_per_batch: int = 2048
    chunk_size: int = 64  # 0: chunking off

    def __post_init__(self) -> None:
        if self.backend not in folding.BACKENDS:
            raise UserError(
                f"{{backend}} {self.backend!r}: expected one of {', '.join(folding.BACKENDS)}",
                field="backend",
            )
        if not 0.0 <= self.plddt_threshold <= 100.0:  # also rejects NaN
            raise UserError(
                f"{{plddt_threshold}} {self.plddt_threshold}: pLDDT is on a 0-100 scale, give a value in "
                "that range",
                field="plddt_threshold",
            )
        check_int("max_tokens_per_batch", self.max_tokens_per_batch, 1, MAX_TOKENS_PER_BATCH)
        check_int("chunk_size", self.chunk_size, 0, MAX_CHUNK_SIZE)


def check_lengths(path: Path, records: list[FastaRecord]) -> None:
    """Every design can be folded: not all unknown, not longer than ESMFold folds."""
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


def natural_baseline(reference: str | None, n: int, records: list[FastaRecord]) -> list[str]:
    """Up to `n` naturals with the lengths of a seeded sample of the designs (none without a reference)."""
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


def fold_designs(
    designs: Path,
    records: list[FastaRecord],
    target: Path,
    settings: FoldSettings,
    *,
    naturals: list[str],
    overwrite: bool,
    ranks,
    device,
) -> tuple[pd.DataFrame, dict] | None:
    """Fold what `target` does not hold yet (the designs, then the natural baseline) and finish the folder;
    on rank 0 its results table and summary, None on the others. `ranks` shares the batches among them."""
    from protein_sedd.evaluation.fold_results import REPORT_FILES, FoldResults, model_label, pdb_names

    file_names = pdb_names(designs, records)
    claimed: list[OutputFolder] = []  # rank 0's locked output folder, released however the run ends

    def earlier_results() -> FoldResults:  # rank 0 alone reads and writes the output folder
        folder = _claim_output(target, designs, overwrite)
        claimed.append(folder)
        results = FoldResults(
            records, file_names, folder.path, settings.plddt_threshold, model_label(settings.model),
            settings.backend,
        )  # fmt: skip
        results.load_previous(designs, overwrite)
        folder.record(REPORT_FILES + list(file_names.values()))  # before any of them is written
        return results

    try:
        results = ranks.from_main(earlier_results)
        todo = [r for r in records if not results.has(r)]
        baseline_done = ranks.from_main(lambda: results.load_baseline(naturals))
        backend = None
        if todo or not baseline_done:
            backend = folding.load_backend(
                settings.backend, settings.model, device, settings.chunk_size or None
            )
        if todo:
            _fold(backend, todo, results, settings.max_tokens_per_batch, ranks)
        if not baseline_done and ranks.is_main:  # a small sample: rank 0 folds it alone
            batches = folding.fold_in_batches(backend, naturals, settings.max_tokens_per_batch)
            folded = dict(pair for indices, done in batches for pair in zip(indices, done, strict=True))
            results.set_baseline(naturals, [folded[i] for i in range(len(naturals))])
        if not ranks.is_main:
            return None
        return _finish(claimed[0], target, results, settings.plddt_threshold)
    finally:
        for folder in claimed:
            folder.__exit__(*sys.exc_info())


def _claim_output(target: Path, designs: Path, overwrite: bool) -> OutputFolder:
    """The folder to fill, locked: the target itself when it holds earlier results, else a `.partial` one."""
    folder = OutputFolder(target, "fold-eval", "{out_dir}")
    state = folder.check(inputs=[designs], overwrite=overwrite)
    if state in ("new", "empty"):
        folder = OutputFolder(target.with_name(f".{target.name}.partial"), "fold-eval", "{out_dir}")
        folder.check(inputs=[designs])  # an interrupted earlier run's, or new
    folder.lock()
    if overwrite:
        folder.remove_own_files()
    return folder


def _finish(
    folder: OutputFolder, target: Path, results: FoldResults, plddt_threshold: float
) -> tuple[pd.DataFrame, dict]:
    """Save the tables and the histogram, then move a `.partial` folder into place."""
    from protein_sedd.evaluation.reports import histogram_png

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
    return frame, summary


def _fold(backend, todo: list[FastaRecord], results: FoldResults, max_tokens: int, ranks) -> None:
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
                list(folding.fold_batch(backend, sequences, batches[mine])) if mine < len(batches) else []
            )
            for part in ranks.gather(folded) or []:  # None on ranks other than 0
                for indices, designs in part:
                    for index, design in zip(indices, designs, strict=True):
                        results.add(todo[index], design)
                    progress.advance(task, len(indices))
            if ranks.is_main:
                results.save()  # after every round: an interrupted run resumes from here
