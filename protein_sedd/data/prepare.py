"""From a data config to splits: resolve the file, read it, filter lengths, split, describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from protein_sedd.data.datasets import resolve_dataset_path, sha256_of
from protein_sedd.data.fasta import read_fasta_hashed
from protein_sedd.data.splits import Splits, split_records


@dataclass
class PreparedData:
    splits: Splits
    source: Path
    sha256: str


def dataset_file(data_cfg, option: str | None = "--fasta PATH") -> Path:
    if data_cfg.name == "fasta":
        return Path(data_cfg.fasta)
    return resolve_dataset_path(data_cfg.name, data_cfg.fasta, option=option)


def recorded_data_config(run_cfg):
    """A run's data config, pointed at the very file it was trained on while that file is there unchanged.

    A named dataset is otherwise looked up afresh ($PROTEIN_SEDD_DATA, the cache), which a later shell may
    not have set up; the run's config records the file it used (`dataset.source`) and its sha256.
    """
    data_cfg = run_cfg.data
    recorded = run_cfg.get("dataset") or {}
    source, sha256 = recorded.get("source"), recorded.get("sha256")
    if data_cfg.name == "fasta" or not source or not sha256:
        return data_cfg
    if Path(source).is_file() and sha256_of(Path(source)) == sha256:
        return OmegaConf.merge(data_cfg, {"fasta": str(source)})
    if data_cfg.fasta is not None and not Path(data_cfg.fasta).is_file():
        return OmegaConf.merge(data_cfg, {"fasta": None})  # that copy is gone: look the dataset up by name
    return data_cfg


def prepare_splits(data_cfg, max_length: int, option: str | None = "--fasta PATH") -> PreparedData:
    """`option`: how the calling command takes a local copy of a named dataset, for the not-found message."""
    source = dataset_file(data_cfg, option)
    records, sha256 = read_fasta_hashed(source)  # one read: a named pipe works too
    splits = split_records(
        records,
        valid_fraction=data_cfg.valid_fraction,
        test_fraction=data_cfg.test_fraction,
        seed=data_cfg.split_seed,
        dedupe=data_cfg.dedupe,
        min_length=data_cfg.min_length,
        max_length=max_length,
    )
    return PreparedData(splits, source, sha256)
