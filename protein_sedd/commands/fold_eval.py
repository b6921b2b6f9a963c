"""`protein-sedd fold-eval`: fold designs with ESMFold, score pLDDT/pTM, write PDBs and a report.

Output folder: one `<id>.pdb` per design (B-factor = per-residue pLDDT), `results.csv`, `summary.json`,
`plddt_histogram.png`. A new folder is filled under a hidden `.<name>.partial` sibling and renamed into place
at the end, so it never appears half-written. `results.csv` and `summary.json` are rewritten after every
batch, so an interrupted run resumes where it stopped (from the `.partial` folder, or from a finished folder
when designs are added). A design counts as done when its id, sequence and PDB file are all there; success is
recomputed from the stored mean pLDDT with the current threshold: a new `--plddt-threshold` refolds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import typer

from protein_sedd.commands.ranks import run_on_ranks
from protein_sedd.data.fasta import FastaRecord, read_fasta
from protein_sedd.distributed import check_devices, distributed
from protein_sedd.errors import UserError
from protein_sedd.evaluation import folding
from protein_sedd.evaluation.reports import (
    histogram_png,
    print_tables,
    rows_table,
    summary_table,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)
from protein_sedd.paths import check_output_path

RESULT_COLUMNS = ["id", "sequence", "length", "mean_plddt", "ptm", "success"]
BEST_SHOWN = 10


def fold_eval(
    ctx: typer.Context,
    designs: Path = typer.Argument(
        ..., help="FASTA file of designs (e.g. designs.fasta from `design`).", show_default=False
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
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
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
) -> None:
    """Fold every design with ESMFold; report pLDDT, pTM and the success rate (mean pLDDT >= threshold)."""
    _check_options(backend, plddt_threshold, device, max_tokens_per_batch, chunk_size)
    check_devices(devices, device)
    records = read_fasta(designs, unique_ids=True)
    _check_lengths(designs, records)
    file_names = _pdb_names(designs, records)
    target = out_dir if out_dir is not None else designs.with_name(f"{designs.stem}_fold_eval")
    if devices > 1:
        run_on_ranks(ctx, devices)
    requested = folding.resolve_device(device)
    with distributed(requested) as ranks:

        def earlier_results() -> tuple[Path, _Results]:  # rank 0 alone reads and writes the output folder
            work = _working_dir(target)
            results = _Results(records, file_names, work, plddt_threshold, _model_label(model), backend)
            results.load_previous()
            return work, results

        work, results = ranks.from_main(earlier_results)
        todo = [r for r in records if not results.has(r)]
        if todo:
            backend_impl = folding.load_backend(backend, model, ranks.device(requested), chunk_size or None)
            if ranks.is_main:
                work.mkdir(parents=True, exist_ok=True)
            _fold(backend_impl, todo, results, max_tokens_per_batch, ranks)
    if not ranks.is_main:
        return

    work.mkdir(parents=True, exist_ok=True)
    frame, summary = results.save()
    histogram_png(
        work / "plddt_histogram.png",
        frame["mean_plddt"].tolist(),
        title=f"ESMFold mean pLDDT of {len(frame)} designs",
        xlabel="mean pLDDT",
        threshold=plddt_threshold,
        threshold_label=f"success threshold {plddt_threshold:g}",
        value_range=(0.0, 100.0),
        bins=40,
    )
    if work != target:
        work.replace(target)
    best = frame.sort_values("mean_plddt", ascending=False).head(BEST_SHOWN)
    print_tables(
        summary_table(f"fold-eval: {target}", summary),
        rows_table(f"best {len(best)} designs", best, ["id", "length", "mean_plddt", "ptm", "success"]),
    )


def _check_options(backend: str, threshold: float, device: str, max_tokens: int, chunk_size: int) -> None:
    if backend not in folding.BACKENDS:
        raise UserError(f"--backend {backend!r}: expected one of {', '.join(folding.BACKENDS)}")
    if not 0.0 <= threshold <= 100.0:  # also rejects NaN
        raise UserError(
            f"--plddt-threshold {threshold}: pLDDT is on a 0-100 scale, give a value in that range"
        )
    if device not in folding.DEVICES:
        raise UserError(f"--device {device!r}: expected one of {', '.join(folding.DEVICES)}")
    if max_tokens < 1:
        raise UserError(f"--max-tokens-per-batch {max_tokens}: must be at least 1")
    if chunk_size < 0:
        raise UserError(f"--chunk-size {chunk_size}: must be 0 (off) or positive")


def _check_lengths(path: Path, records: list[FastaRecord]) -> None:
    for record in records:
        if len(record.sequence) > folding.MAX_FOLD_LENGTH:
            raise UserError(
                f"{path}: record {record.id!r} has {len(record.sequence)} residues; ESMFold folds at most "
                f"{folding.MAX_FOLD_LENGTH}"
            )


def _pdb_names(path: Path, records: list[FastaRecord]) -> dict[str, str]:
    """A safe file name per id (characters outside [A-Za-z0-9._-] become '_'); collisions are an error."""
    names: dict[str, str] = {}
    owners: dict[str, str] = {}
    for record in records:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", record.id).lstrip(".") or "_"
        name = f"{name}.pdb"
        if name.lower() in owners:
            raise UserError(
                f"{path}: ids {owners[name.lower()]!r} and {record.id!r} map to the same file {name}"
            )
        owners[name.lower()] = record.id
        names[record.id] = name
    return names


def _working_dir(target: Path) -> Path:
    check_output_path(target, "--out-dir")
    if target.exists() and not target.is_dir():
        raise UserError(f"--out-dir {target}: exists and is not a folder")
    if target.is_dir() and (target / "results.csv").is_file():
        return target  # a finished run: add to it in place, file by file
    if target.is_dir() and any(target.iterdir()):
        raise UserError(
            f"--out-dir {target}: folder is not empty and holds no fold-eval results; choose another"
        )
    return target.with_name(f".{target.name}.partial")  # renamed onto the target (absent or empty) at the end


def _model_label(model: str) -> str:
    local = Path(model).expanduser()
    return str(local.resolve()) if local.exists() else model


@dataclass
class _Results:
    """The rows folded so far (from earlier runs and this one), and how they are written out."""

    records: list[FastaRecord]
    file_names: dict[str, str]
    work: Path
    threshold: float
    model_label: str
    backend: str
    rows: dict[str, dict] = field(default_factory=dict)

    def has(self, record: FastaRecord) -> bool:
        return record.id in self.rows

    def load_previous(self) -> None:
        """Keep earlier rows whose id and sequence match a design and whose PDB file is still there."""
        previous = _previous_results(self.work, self.model_label)
        for record in self.records:
            row = previous.get(record.id)
            if (
                row
                and row["sequence"] == record.sequence
                and (self.work / self.file_names[record.id]).is_file()
            ):
                self.rows[record.id] = row

    def add(self, record: FastaRecord, design: folding.FoldedDesign) -> None:
        write_text_atomic(self.work / self.file_names[record.id], design.pdb)
        self.rows[record.id] = {
            "id": record.id,
            "sequence": record.sequence,
            "length": len(record.sequence),
            "mean_plddt": design.mean_plddt,
            "ptm": design.ptm,
        }

    def frame(self):
        import pandas as pd

        ordered = [self.rows[r.id] for r in self.records if r.id in self.rows]
        frame = pd.DataFrame(ordered, columns=RESULT_COLUMNS)
        frame = frame.astype({"length": int, "mean_plddt": float, "ptm": float})
        frame["success"] = frame["mean_plddt"] >= self.threshold  # always from the current threshold
        return frame

    def summary(self, frame) -> dict:
        n = len(frame)
        successes = int(frame["success"].sum())
        nan = float("nan")
        return {
            "n": n,
            "successes": successes,
            "success_rate": successes / n if n else nan,
            "mean_plddt": float(frame["mean_plddt"].mean()) if n else nan,
            "median_plddt": float(frame["mean_plddt"].median()) if n else nan,
            "mean_ptm": float(frame["ptm"].mean()) if n else nan,
            "threshold": self.threshold,
            "model": self.model_label,
            "backend": self.backend,
        }

    def save(self):
        frame = self.frame()
        summary = self.summary(frame)
        write_csv_atomic(self.work / "results.csv", frame)
        write_json_atomic(self.work / "summary.json", summary)
        return frame, summary


def _previous_results(work: Path, model_label: str) -> dict[str, dict]:
    import json

    import pandas as pd

    results, summary = work / "results.csv", work / "summary.json"
    if not results.is_file():
        return {}
    if summary.is_file():
        try:
            folded_with = json.loads(summary.read_text()).get("model")
        except (OSError, ValueError):
            folded_with = None
        if folded_with is not None and folded_with != model_label:
            raise UserError(
                f"{work}: holds designs folded with model {folded_with}, not {model_label}; "
                "use that --model or another --out-dir"
            )
    try:
        frame = pd.read_csv(results, dtype={"id": str, "sequence": str}, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{results}: unreadable previous results ({err}); delete it to start again") from None
    if missing := [c for c in RESULT_COLUMNS if c not in frame.columns]:
        raise UserError(f"{results}: previous results lack columns {missing}; delete it to start again")
    return {row["id"]: row for row in frame[RESULT_COLUMNS].to_dict("records")}


def _fold(backend_impl, todo: list[FastaRecord], results: _Results, max_tokens: int, ranks) -> None:
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
