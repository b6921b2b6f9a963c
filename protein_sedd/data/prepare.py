"""From a data config to splits: resolve the file, read it, filter lengths, split, describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protein_sedd.data.datasets import resolve_dataset_path, sha256_of
from protein_sedd.data.fasta import read_fasta
from protein_sedd.data.splits import Splits, split_records


@dataclass
class PreparedData:
    splits: Splits
    source: Path
    sha256: str


def dataset_file(data_cfg) -> Path:
    if data_cfg.name == "fasta":
        return Path(data_cfg.fasta)
    return resolve_dataset_path(data_cfg.name, data_cfg.fasta)


def prepare_splits(data_cfg, max_length: int) -> PreparedData:
    source = dataset_file(data_cfg)
    records = read_fasta(source)
    splits = split_records(
        records,
        valid_fraction=data_cfg.valid_fraction,
        test_fraction=data_cfg.test_fraction,
        seed=data_cfg.split_seed,
        dedupe=data_cfg.dedupe,
        min_length=data_cfg.min_length,
        max_length=max_length,
    )
    return PreparedData(splits, source, sha256_of(source))
