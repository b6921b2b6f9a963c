"""A design campaign's outputs, read back and checked before anything is drawn from them.

Each part is what one command wrote: a training run (`train --out`), a designs FASTA (`design`), and the
folders or tables of `seq-eval`, `fold-eval`, `select` and `score-variants`. Each reader checks its part as
user input (the files it needs, their columns, numbers that are numbers, the folder's owner record naming
the right command) and raises one `UserError` naming the file; a part that was not given stays None and
its section says what would fill it. Parts that name the same designs must agree on their ids, so a report
never puts one campaign's structures beside another's sequences.

Every file read is listed with its sha256 and the command that wrote it (`Source`), for the page's header.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from protein_sedd.data.datasets import sha256_of
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord, read_fasta
from protein_sedd.io.tables import numeric_column, read_text_table

MAX_JSON_BYTES = 64 * 1024**2


@dataclass
class Source:
    """One input as the header shows it: which part, where, what wrote it, and the files' checksums."""

    part: str
    path: Path
    command: str
    details: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256


@dataclass
class Run:
    path: Path
    config: dict
    metrics: pd.DataFrame  # step, train_loss, lr, elapsed_s, valid_bits_per_residue (NaN between checks)
    model: object | None  # the trained model (ProteinSEDD), for its size and embeddings


@dataclass
class SeqEval:
    path: Path
    results: pd.DataFrame
    summary: dict
    naturals: pd.DataFrame | None  # natural_baseline.csv; None for folders from before it was written


@dataclass
class FoldEval:
    path: Path
    results: pd.DataFrame
    summary: dict
    structures: dict[str, Path]  # design id -> its PDB file (the ones present)

    @property
    def toy(self) -> bool:
        return bool(self.summary.get("note"))


@dataclass
class Selection:
    path: Path
    picks: pd.DataFrame  # every design with its metrics, rank and `picked`
    summary: dict
    fasta: str  # picks.fasta as written


@dataclass
class Variants:
    path: Path
    scores: pd.DataFrame  # mutant, score (NaN: not scored), DMS_score where the table had it
    summary: dict


@dataclass
class Campaign:
    run: Run | None = None
    designs: list[FastaRecord] | None = None
    designs_path: Path | None = None
    seq_eval: SeqEval | None = None
    fold_eval: FoldEval | None = None
    selection: Selection | None = None
    variants: Variants | None = None
    sources: list[Source] = field(default_factory=list)

    def tables(self) -> list[tuple[Path, list[str]]]:
        """(file, design ids) of every part that lists designs, the designs FASTA first."""
        listed = [(self.designs_path, [r.id for r in self.designs])] if self.designs is not None else []
        for part, name, frame in [
            (self.seq_eval, "results.csv", "results"),
            (self.fold_eval, "results.csv", "results"),
            (self.selection, "picks.csv", "picks"),
        ]:
            if part is not None:
                listed.append((part.path / name, getattr(part, frame)["id"].tolist()))
        return listed


# -- generic checked readers ------------------------------------------------------------------------------
def read_json(path: Path, expected: str) -> dict:
    """A JSON object, or a UserError naming `path` and what it should be."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected {expected}")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise UserError(f"{path}: larger than {MAX_JSON_BYTES // 1024**2} MiB; not {expected}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        reason = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
        raise UserError(f"{path}: damaged, not valid JSON ({reason}); expected {expected}") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: damaged, expected {expected} (a JSON object)")
    return value


def read_table(path: Path, expected: str, columns: list[str], numbers: dict[str, bool]) -> pd.DataFrame:
    """A CSV with `columns`; the columns in `numbers` converted to float (value: missing allowed)."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected {expected}")
    table = read_text_table(path, str(path), expected)
    absent = [c for c in columns if c not in table.columns]
    if absent:
        raise UserError(f"{path}: damaged, no column {absent[0]!r}; expected {expected}")
    for column, missing_ok in numbers.items():
        if column in table.columns:
            table[column] = numeric_column(
                table, column, lambda row: f"{path} row {row + 2}", missing_ok=missing_ok
            )
    return table


def _flags(table: pd.DataFrame, path: Path, columns: list[str]) -> None:
    for column in columns:
        if column not in table.columns:
            continue
        values = table[column].str.strip()
        bad = values[~values.isin(["True", "False", ""])]
        if len(bad):
            raise UserError(f"{path} row {bad.index[0] + 2}: {column} {bad.iloc[0]!r} is not True or False")
        table[column] = values == "True"


def _summary_number(summary: dict, key: str, path: Path) -> None:
    value = summary.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{path}: damaged, {key} is {value!r} (expected a number)")


def _owner(folder: Path, command: str, field: str) -> None:
    """A folder's owner record, when it has one, must name `command`."""
    record = folder / ".protein-sedd" / "owner.json"
    if not record.is_file():
        return
    owner = read_json(record, "a protein-sedd owner record")
    if owner.get("command") != command:
        raise UserError(
            f"{{{field}}} {folder}: written by `protein-sedd {owner.get('command')}`, not `{command}`; "
            f"pass the folder `{command}` wrote",
            field=field,
        )


def _folder(path: Path, field: str, command: str) -> Path:
    """A command's output folder given as parameter `field` (named as the caller wrote it)."""
    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{{{field}}} {path}: no such folder; pass the output folder of `protein-sedd {command}`",
            field=field,
        )
    if not path.is_dir():
        raise UserError(
            f"{{{field}}} {path}: not a folder; pass the output folder of `protein-sedd {command}`",
            field=field,
        )
    _owner(path, command, field)
    return path


def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_of(folder / name) for name in names if (folder / name).is_file()}


# -- the parts ---------------------------------------------------------------------------------------------
METRIC_COLUMNS = ["step", "train_loss", "lr", "elapsed_s"]


def read_run(path: Path) -> tuple[Run, Source]:
    from omegaconf import OmegaConf

    from protein_sedd.api import load
    from protein_sedd.model.folder import load_config

    folder = _folder(path, "run", "train")
    if not (folder / "config.yaml").is_file() or not (folder / "metrics.csv").is_file():
        raise UserError(
            f"{{run}} {folder}: not a training run "
            "(expected config.yaml and metrics.csv from `protein-sedd train`)",
            field="run",
        )
    config = OmegaConf.to_container(load_config(folder))
    numbers = {c: False for c in METRIC_COLUMNS} | {
        "valid_bits_per_residue": True,
        "valid_nats_per_sequence": True,
    }
    metrics = read_table(folder / "metrics.csv", "a training run's metrics.csv", METRIC_COLUMNS, numbers)
    if metrics.empty:
        raise UserError(f"{folder / 'metrics.csv'}: no rows; the run logged no step yet")
    model = load(folder, device="cpu")
    dataset = config.get("dataset") or {}
    details = [
        f"model={config['model'].get('name')}",
        f"dataset={dataset.get('name') or dataset.get('source')}",
    ]
    source = Source(
        "training run", folder, "train", details, _digests(folder, ["config.yaml", "metrics.csv"])
    )
    if (weights := folder / "checkpoint" / "model.safetensors").is_file():
        source.files["checkpoint/model.safetensors"] = sha256_of(weights)
    return Run(folder, config, metrics, model), source


def read_designs(path: Path) -> tuple[list[FastaRecord], Source]:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{{designs}} {path}: no such file; pass the FASTA `protein-sedd design` wrote", field="designs"
        )
    records = read_fasta(path, unique_ids=True)
    if not records:
        raise UserError(f"{{designs}} {path}: no records", field="designs")
    settings = dict(re.findall(r"(\w+)=(\S+)", records[0].description))
    details = [
        f"{k}={v}"
        for k, v in settings.items()
        if k in ("steps", "seed", "checkpoint", "sampler", "temperature", "guide", "target")
    ]
    return records, Source(
        "designs", path, "design", [f"{len(records)} designs", *details], {path.name: sha256_of(path)}
    )


def read_seq_eval(path: Path) -> tuple[SeqEval, Source]:
    from protein_sedd.evaluation.sequence_report import RESULT_COLUMNS

    folder = _folder(path, "seq_eval", "seq-eval")
    numbers = {"length": False, "family_bits": False, "nearest_identity": False}
    results = read_table(folder / "results.csv", "seq-eval's results.csv", RESULT_COLUMNS, numbers)
    _flags(results, folder / "results.csv", ["exact_copy", "low_complexity"])
    summary = read_json(folder / "summary.json", "seq-eval's summary.json")
    for key in ("family_pass_bits", "mean_pairwise_identity", "n_reference"):
        _summary_number(summary, key, folder / "summary.json")
    for key in ("family_pass", "unique", "exact_copy", "low_complexity"):
        _check_rate(summary.get(key), folder / "summary.json", key)
    naturals = None
    if (folder / "natural_baseline.csv").is_file():
        naturals = read_table(
            folder / "natural_baseline.csv",
            "seq-eval's natural_baseline.csv",
            ["id", "sequence", "length", "family_bits"],
            {"length": False, "family_bits": False},
        )
    names = ["results.csv", "summary.json", "natural_baseline.csv"]
    details = [f"reference {summary.get('reference')} (sha256 {str(summary.get('reference_sha256'))[:12]})"]
    return SeqEval(folder, results, summary, naturals), Source(
        "seq-eval", folder, "seq-eval", details, _digests(folder, names)
    )


def _check_rate(value, path: Path, key: str) -> None:
    ok = (
        isinstance(value, dict)
        and all(isinstance(value.get(k), (int, float)) for k in ("rate", "count", "n"))
        and isinstance(value.get("ci95"), list)
        and len(value["ci95"]) == 2
    )
    if not ok:
        raise UserError(f"{path}: damaged, {key} is not a rate with its interval")


def read_fold_eval(path: Path) -> tuple[FoldEval, Source]:
    from protein_sedd.evaluation.fold_results import RESULT_COLUMNS, pdb_names

    folder = _folder(path, "fold_eval", "fold-eval")
    numbers = {"length": False, "mean_plddt": False, "ptm": True}
    results = read_table(folder / "results.csv", "fold-eval's results.csv", RESULT_COLUMNS, numbers)
    _flags(results, folder / "results.csv", ["success"])
    summary = read_json(folder / "summary.json", "fold-eval's summary.json")
    _summary_number(summary, "threshold", folder / "summary.json")
    _check_rate(summary.get("success"), folder / "summary.json", "success")
    records = [FastaRecord(i, "", s) for i, s in zip(results["id"], results["sequence"], strict=True)]
    structures = {
        design: folder / name
        for design, name in pdb_names(folder / "results.csv", records).items()
        if (folder / name).is_file()
    }
    details = [f"model {summary.get('model')}", f"{len(structures)} structures"]
    if summary.get("note"):
        details.append(str(summary["note"]))
    return FoldEval(folder, results, summary, structures), Source(
        "fold-eval", folder, "fold-eval", details, _digests(folder, ["results.csv", "summary.json"])
    )


def read_selection(path: Path) -> tuple[Selection, Source]:
    folder = _folder(path, "select", "select")
    numbers = {
        "length": False,
        "rank": True,
        "family_bits": True,
        "nearest_identity": True,
        "mean_plddt": True,
    }
    picks = read_table(
        folder / "picks.csv", "select's picks.csv", ["id", "length", "picked", "rank", "sequence"], numbers
    )
    _flags(picks, folder / "picks.csv", ["picked", "eligible", "low_complexity"])
    summary = read_json(folder / "summary.json", "select's summary.json")
    funnel = summary.get("funnel")
    if not isinstance(funnel, list) or not all(
        isinstance(s, dict) and isinstance(s.get("stage"), str) and isinstance(s.get("left"), int)
        for s in funnel
    ):
        raise UserError(f"{folder / 'summary.json'}: damaged, funnel is not a list of stages")
    fasta = folder / "picks.fasta"
    chosen = read_fasta(fasta, unique_ids=True) if fasta.is_file() else None
    if chosen is None:
        raise UserError(f"{fasta}: no such file; expected select's picks.fasta")
    picked = picks.loc[picks["picked"], "id"].tolist()
    if sorted(picked) != sorted(r.id for r in chosen):
        raise UserError(
            f"{fasta}: does not hold the designs picks.csv marks as picked; rerun `protein-sedd select`"
        )
    details = [f"{len(picked)} picked, ranked by {summary.get('rank_by')}"]
    return Selection(folder, picks, summary, fasta.read_text()), Source(
        "select", folder, "select", details, _digests(folder, ["picks.csv", "summary.json", "picks.fasta"])
    )


def read_variants(path: Path) -> tuple[Variants, Source]:
    from protein_sedd.evaluation.variant_report import COMMAND, summary_path

    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{{variants}} {path}: no such file; pass the CSV `protein-sedd score-variants` wrote",
            field="variants",
        )
    summary = read_json(summary_path(path), "score-variants' summary beside its table")
    if summary.get("command") != COMMAND or summary.get("csv") != path.name:
        raise UserError(
            f"{{variants}} {path}: {summary_path(path).name} is not this table's score-variants summary",
            field="variants",
        )
    digest = sha256_of(path)
    if summary.get("csv_sha256") != digest:
        raise UserError(
            f"{{variants}} {path}: changed since score-variants wrote it (its summary records another "
            "sha256); rerun score-variants",
            field="variants",
        )
    numbers = {"score": True, "DMS_score": True}
    scores = read_table(path, "score-variants' table", ["mutant", "score"], numbers)
    wildtype = summary.get("wildtype") if isinstance(summary.get("wildtype"), dict) else {}
    details = [
        f"wild type {wildtype.get('id')}",
        f"method {summary.get('method')}",
        f"model {summary.get('checkpoint')}",
    ]
    return Variants(path, scores, summary), Source(
        "variants",
        path,
        "score-variants",
        details,
        {path.name: digest, summary_path(path).name: sha256_of(summary_path(path))},
    )


def _same_designs(first: list[str], second: list[str], name: str, other: str) -> None:
    missing = sorted(set(second) - set(first))
    if missing:
        raise UserError(
            f"{name}: holds design {missing[0]!r}, which is not in {other} ({len(missing)} such ids); "
            "pass the outputs of one campaign"
        )


def read_campaign(
    run: Path | None = None,
    designs: Path | None = None,
    seq_eval: Path | None = None,
    fold_eval: Path | None = None,
    select: Path | None = None,
    variants: Path | None = None,
) -> Campaign:
    """Every part given, read and checked; parts naming designs must name designs of one campaign."""
    campaign = Campaign()
    if not any(p is not None for p in (run, designs, seq_eval, fold_eval, select, variants)):
        raise UserError(
            "nothing to report: pass at least one of --run, --designs, --seq-eval, --fold-eval, --select, "
            "--variants"
        )
    readers = [
        (run, read_run, "run"),
        (seq_eval, read_seq_eval, "seq_eval"),
        (fold_eval, read_fold_eval, "fold_eval"),
        (select, read_selection, "selection"),
        (variants, read_variants, "variants"),
    ]
    if designs is not None:
        campaign.designs, source = read_designs(designs)
        campaign.designs_path = Path(designs)
        campaign.sources.append(source)
    for path, reader, attribute in readers:
        if path is not None:
            part, source = reader(path)
            setattr(campaign, attribute, part)
            campaign.sources.append(source)
    tables = campaign.tables()
    for path, ids in tables[1:]:  # every table names designs of the first (the FASTA where given)
        _same_designs(tables[0][1], ids, str(path), str(tables[0][0]))
    return campaign
