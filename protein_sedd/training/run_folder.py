"""A run directory: claiming and locking it, what a new run records (config.yaml, splits.json), what a
resumed run checks against them (its dataset, its metrics log), and its checkpoints.

A run directory holds config.yaml (the resolved config plus alphabet, training lengths and dataset
record), splits.json, metrics.csv, loss_curve.png, checkpoint/ and best/ (training/checkpoint.py);
RUN_FILES is everything a run writes there, which `--overwrite` may remove and nothing else.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.data.splits import SPLIT_METHODS, SPLITS
from protein_sedd.errors import UserError
from protein_sedd.io.atomic import atomic_path, write_json_atomic
from protein_sedd.io.outputs import OutputFolder
from protein_sedd.model.folder import CHECKPOINT_DIR
from protein_sedd.runtime.distributed import Distributed
from protein_sedd.training.checkpoint import BEST_DIR, CHECKPOINT_FOLDERS, save_checkpoint, swap_folders
from protein_sedd.training.metrics import MetricsLog, plot_loss_curve
from protein_sedd.training.state import TrainingState

RUN_CONFIG = "config.yaml"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.csv"
LOSS_CURVE = "loss_curve.png"
# everything a run writes in its directory: what --overwrite may remove
RUN_FILES = [RUN_CONFIG, SPLITS_FILE, METRICS_FILE, LOSS_CURVE, *CHECKPOINT_FOLDERS, *swap_folders(BEST_DIR)]


def run_config(cfg: DictConfig, prepared, train_records) -> DictConfig:
    extra = {
        "alphabet": {
            "tokens": ALPHABET.tokens,
            "n_residues": ALPHABET.n_residues,
            "pad_index": ALPHABET.pad_index,
            "mask_index": ALPHABET.mask_index,
        },
        "lengths": _length_entry(cfg, prepared, train_records),
        "dataset": {
            "name": cfg.data.name,
            "source": str(prepared.source),
            "sha256": prepared.sha256,
            **prepared.splits.stats,
        },
    }
    return OmegaConf.merge(OmegaConf.to_container(cfg, resolve=True), extra)


def _length_entry(cfg: DictConfig, prepared, train_records) -> dict:
    """The run config's `lengths`: the histogram designs draw from (full-length training members when
    fragments are filtered, data/family/training_set.py) and, in words, which records it counts."""
    family = prepared.family
    if family is None:
        return LengthPrior.from_counts(train_records.length_counts(), cfg.model.max_length).to_config()
    members = family.length_members(train_records.indices)
    if family.weights is None:
        prior = LengthPrior.from_counts(family.store.length_counts(members), cfg.model.max_length)
        return {**prior.to_config(), "source": family.length_source(train_records.indices)}
    # a weighted run learns the weighted family: its design lengths follow the same measure
    counts = np.bincount(family.store.block_lengths(members), weights=family.weights[members])
    prior = LengthPrior.from_counts(counts, cfg.model.max_length)
    source = f"{family.length_source(train_records.indices)}, weighted by redundancy"
    return {**prior.to_config(), "weighted": True, "source": source}


def _write_splits(path: Path, prepared, method: str) -> None:
    """The dataset's sha256 and which records trained (`train_digest`, cache.store.RecordView.ids_digest);
    the id lists too under data.split=sequence_hash or cluster, none under id_hash (millions of ids: the
    split is a function of the ids and the seed, and `evaluate` recomputes it)."""
    splits = prepared.splits
    payload = {"source": str(prepared.source), "sha256": prepared.sha256, "split": method}
    payload.update({f"n_{name}": len(splits[name]) for name in SPLITS})
    payload["train_digest"] = splits.train.ids_digest()
    if method != "id_hash":
        payload.update(splits.ids())
    write_json_atomic(path, payload)


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> OutputFolder:
    """Check and lock the run directory: a new or empty folder, or this trainer's own run.

    A new run never writes into someone else's folder, nor over an earlier run's checkpoint unless
    `overwrite` says so (which removes only the files a run writes); `resume` needs a run with a checkpoint.
    """
    folder = OutputFolder(run_dir, "train", "{out}")
    state = folder.check(overwrite=overwrite and not resume)
    has_checkpoint = (run_dir / CHECKPOINT_DIR).exists() or (run_dir / f"{CHECKPOINT_DIR}.old").exists()
    earlier_run = state == "own" or (has_checkpoint and (run_dir / RUN_CONFIG).is_file())
    if resume and not (earlier_run and has_checkpoint):
        raise UserError(
            f"{{resume}}: {run_dir} holds no checkpoint to resume; drop {{resume}} to start a new run",
            field="resume",
        )
    if not resume and has_checkpoint and not overwrite:
        raise UserError(
            f"{run_dir} already holds a run; pass {{resume}} to continue it, {{overwrite}} to start it again "
            "(removes its checkpoint), or choose another {out}",
            field=("resume", "overwrite", "out"),
        )
    folder.lock()
    if overwrite and not resume:
        folder.remove_own_files()
    folder.record(RUN_FILES)
    return folder


def _recorded_splits(path: Path) -> dict:
    """splits.json of the run being resumed: its dataset's sha256 and its training ids or their digest
    (runs from before the digest record the ids alone), checked for shape."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # missing, unreadable, not UTF-8 or not JSON
        what = type(err).__name__
        raise UserError(
            f"{{resume}}: {path}: unreadable ({what}); is this a run directory?", field="resume"
        ) from None
    ok = (
        isinstance(recorded, dict)
        and isinstance(recorded.get("sha256"), str)
        and (
            isinstance(recorded.get("train_digest"), str)
            or isinstance(recorded.get("train"), list)
            and all(isinstance(i, str) for i in recorded["train"])
        )
    )
    if not ok:
        raise UserError(
            f"{{resume}}: {path}: malformed (needs 'sha256' and 'train_digest' or a 'train' list of ids)",
            field="resume",
        )
    return recorded


NUMERIC_METRICS = (
    "train_loss", "lr", "grad_norm", "tokens_per_s", "valid_nats_per_sequence", "valid_bits_per_residue",
    "elapsed_s",
)  # fmt: skip


def check_metrics(path: Path) -> None:
    """metrics.csv of a resumed run: whole-number steps and numbers where numbers belong, before it is
    rewritten and plotted (a damaged log stops the resume with one line, not a traceback mid-run)."""
    if not path.exists():
        return
    try:
        rows = MetricsLog.read(path)
        for number, row in enumerate(rows, start=2):
            try:
                int(row["step"])
                for key in NUMERIC_METRICS:
                    if row.get(key):
                        float(row[key])
            except (KeyError, TypeError, ValueError):
                raise UserError(
                    f"{{resume}}: {path}: malformed line {number}; repair it or move the file away",
                    field="resume",
                ) from None
    except (OSError, ValueError, csv.Error) as err:
        raise UserError(f"{{resume}}: {path}: unreadable ({type(err).__name__})", field="resume") from None


def start_run_dir(run_dir: Path, resume: bool, prepared, run_cfg: DictConfig, ranks: Distributed) -> None:
    """A resumed run must see the dataset it was trained on; a new one records its splits and config."""
    if resume:
        recorded = _recorded_splits(run_dir / SPLITS_FILE)
        train = prepared.splits.train
        same_train = (
            recorded["train_digest"] == train.ids_digest()
            if "train_digest" in recorded
            else recorded["train"] == [r.id for r in train]
        )
        if recorded["sha256"] != prepared.sha256 or not same_train:
            raise UserError(
                f"{{resume}}: the dataset differs from the one {run_dir} was trained on ({prepared.source})",
                field="resume",
            )
    ranks.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _write_splits(run_dir / SPLITS_FILE, prepared, run_cfg.data.get("split", SPLIT_METHODS[0]))
            with atomic_path(run_dir / RUN_CONFIG) as tmp:
                OmegaConf.save(run_cfg, tmp)


class Checkpoints:
    """Saves the training state once per step reached; rank 0 writes, and a failure there (a full disk)
    stops every rank alike."""

    def __init__(self, run_dir: Path, run_cfg: DictConfig, ranks: Distributed, saved_step: int | None):
        self.run_dir, self.run_cfg, self.ranks = run_dir, run_cfg, ranks
        self.saved_step = saved_step

    def save(self, state: TrainingState) -> None:
        if self.saved_step == state.step:  # a stop right after a scheduled save: nothing new to write
            return
        self.saved_step = state.step

        def save() -> None:
            config = OmegaConf.merge(self.run_cfg, {"step": state.step})
            save_checkpoint(self.run_dir, state.ema.model, config, state.state_dict())
            plot_loss_curve(self.run_dir / METRICS_FILE, self.run_dir / LOSS_CURVE)

        self.ranks.from_main(save)

    def save_best(self, state: TrainingState) -> None:
        """The EMA weights that just lowered the best scheduled validation bound, as `RUN/best/` (weights and
        config, no trainer state); its config's `step` and `valid_bits_per_residue` say which they are."""
        best = state.early_stopping
        config = OmegaConf.merge(self.run_cfg, {"step": best.best_step, "valid_bits_per_residue": best.best})
        self.ranks.from_main(lambda: save_checkpoint(self.run_dir, state.ema.model, config, None, BEST_DIR))
