"""From a data config to splits: resolve the file, tokenise it once (the token cache, memory-mapped),
filter lengths, split, describe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from protein_sedd.data.cache.tokens import token_cache
from protein_sedd.data.datasets import resolve_dataset_path, sha256_of
from protein_sedd.data.family.training_set import FamilyData, family_data
from protein_sedd.data.focus_columns import check_fits
from protein_sedd.data.splits import SPLIT_METHODS, Splits, split_store


@dataclass
class PreparedData:
    splits: Splits
    source: Path
    sha256: str
    family: FamilyData | None = None  # coverage, weights and the length members of the splits' records


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
    """`option`: how the calling command takes a local copy of a named dataset, for the not-found message.

    The splits are views of the file's token cache (token_cache.py): built on the first use, checked and
    memory-mapped after that; an alignment's are views of a store built in memory (family.py). A config
    without `data.split` (a run from before it) splits as it did.
    """
    source = dataset_file(data_cfg, option)
    # FASTA: one read to build the token cache (a named pipe works too); an alignment: read in memory,
    # fragments dropped and weights computed (family.py)
    family, sha256 = family_data(data_cfg, source, token_cache)
    if family.stats.get("representation") == "focus_columns":  # every record is one column-row long
        check_fits(family.stats["n_focus_columns"], max_length, source)
    method = data_cfg.get("split", SPLIT_METHODS[0])
    clusters = None
    if method == "cluster":  # a run from before data.split_identity never split by cluster
        clusters = family.clusters(float(data_cfg.get("split_identity", 0.5)), source)
    splits = split_store(
        family.store,
        valid_fraction=data_cfg.valid_fraction,
        test_fraction=data_cfg.test_fraction,
        seed=data_cfg.split_seed,
        dedupe=data_cfg.dedupe,
        min_length=family.min_length,
        max_length=max_length,
        method=method,
        clusters=clusters,
    )
    family.describe_splits(splits, data_cfg.dedupe)
    return PreparedData(splits, source, sha256, family)
