"""A training run's config from what the caller gives: a dataset or file, Hydra overrides, a parent to
fine-tune from, or a run to resume; checked before any name is taken from it.

    cfg, run_dir = training_config(fasta="family.a3m", overrides=["model=small"], max_steps=2000)

`protein_sedd.train` and the `train` command both call it (the command adds only --devices and --threads),
so a run started from Python and one started from the shell are the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protein_sedd.config.compose import compose_config, config_dir
from protein_sedd.config.files import load_config_file
from protein_sedd.config.limits import MAX_TRAIN_STEPS, check_int
from protein_sedd.errors import UserError, check_type
from protein_sedd.io.paths import check_output_path

GROUPS = ("model", "data", "noise", "graph", "trainer")


def training_config(
    *,
    dataset: str | None = None,
    fasta: str | Path | None = None,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | Path | None = None,
    named_out: bool = True,
) -> tuple[DictConfig, Path | None]:
    """The validated config of the run and its directory (`out`, or with `named_out` the default
    runs/<data>-<model>-<timestamp>; None when `named_out` is False and no `out` is given).

    Mistakes name the parameters: `resume` continues the run in `out` (key=value overrides only; no
    dataset, file or parent), `overwrite` starts it again, `init_from` fine-tunes from a checkpoint.
    """
    overrides = _checked_overrides(overrides)
    _check_choices(dataset, fasta, out, max_steps, resume, overwrite, init_from)
    if resume:
        cfg = _compose_resumed(Path(out), overrides)
    else:
        cfg = _compose_new(dataset, None if fasta is None else Path(fasta), overrides)
        if init_from is not None:
            from protein_sedd.training.init_from import inherit_from_parent

            cfg = inherit_from_parent(cfg, overrides, str(init_from))
    from protein_sedd.config.checks import validate_config

    validate_config(cfg)  # before any name is taken from it; max_steps is bounded like trainer.max_steps
    if max_steps is not None:
        cfg.trainer.max_steps = max_steps
    run_dir = Path(out) if out is not None else (default_run_dir(cfg) if named_out else None)
    if run_dir is not None:
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"{{out}} {run_dir}: exists and is not a directory", field="out")
        check_output_path(run_dir, "{out}", field="out")
    return cfg, run_dir


def default_run_dir(cfg: DictConfig) -> Path:
    """runs/<data>-<model>-<timestamp>: the file's stem for a FASTA run."""
    name = Path(cfg.data.fasta).stem if cfg.data.name == "fasta" else cfg.data.name
    return Path("runs") / f"{name}-{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _checked_overrides(overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, (str, bytes)) or not all(isinstance(o, str) for o in overrides):
        raise UserError(
            "{overrides}: give a list of Hydra overrides such as ['model=small', 'trainer.lr=3e-4']",
            field="overrides",
        )
    return list(overrides)


def _check_choices(dataset, fasta, out, max_steps, resume, overwrite, init_from) -> None:
    for name, value in (("resume", resume), ("overwrite", overwrite)):
        if not isinstance(value, bool):
            raise UserError(f"{{{name}}} {value!r}: must be True or False", field=name)
    for name, value in (("dataset", dataset), ("fasta", fasta), ("out", out), ("init_from", init_from)):
        check_type(name, value, (str, Path), "a path or name")
    if max_steps is not None:
        check_int("max_steps", max_steps, 1, MAX_TRAIN_STEPS)
    if resume and overwrite:
        raise UserError(
            "{resume} continues the run in {out} and {overwrite} starts it again: give one",
            field=("resume", "out", "overwrite"),
        )
    if resume:
        if out is None:
            raise UserError("{resume} needs {out} RUN_DIR (the run to continue)", field=("resume", "out"))
        if dataset or fasta:
            raise UserError(
                "{resume} continues on the run's own dataset; drop {dataset}/{fasta}",
                field=("resume", "dataset", "fasta"),
            )
        if init_from is not None:
            raise UserError(
                "{resume} continues a run from its own checkpoint (its parent is recorded); drop {init_from}",
                field=("resume", "init_from"),
            )


def _compose_new(dataset: str | None, fasta: Path | None, overrides: list[str]) -> DictConfig:
    if any(o.startswith("data=") for o in overrides) and (dataset or fasta):
        raise UserError(
            "give the dataset either as {dataset}/{fasta} or as a data= override, not both",
            field=("dataset", "fasta"),
        )
    group = []
    if dataset:
        if not (config_dir() / "data" / f"{dataset}.yaml").is_file() or dataset == "fasta":
            known = sorted(p.stem for p in (config_dir() / "data").glob("*.yaml") if p.stem != "fasta")
            raise UserError(
                f"{{dataset}} {dataset!r}: unknown dataset; known: {', '.join(known)} "
                "(or pass {fasta} PATH)",
                field=("dataset", "fasta"),
            )
        group = [f"data={dataset}"]
    elif fasta:
        group = ["data=fasta"]
    cfg = compose_config(group + overrides, resolve=False)
    if not isinstance(cfg.get("data"), DictConfig):  # e.g. `~data` deleted the group
        raise UserError(
            "data: missing section; pick a dataset with {dataset}, {fasta} or data=NAME",
            field=("dataset", "fasta"),
        )
    if fasta:
        cfg.data.fasta = str(fasta)
    if OmegaConf.is_missing(cfg.data, "fasta"):
        raise UserError("data=fasta needs a file: pass {fasta} PATH", field="fasta")
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:  # an override's ${...} that cannot be resolved
        raise UserError(f"bad config override ({' '.join(str(err).split())[:200]})") from None
    if isinstance(cfg.get("model"), DictConfig):  # what the network kind records (ESM-2: its architecture)
        from protein_sedd.model.networks import network_kind

        model = OmegaConf.to_container(cfg.model)
        cfg.model = OmegaConf.create(network_kind(model).resolve(model))
    return cfg


def _compose_resumed(run_dir: Path, overrides: list[str]) -> DictConfig:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(
            f"{{resume}}: {path} not found; is {run_dir} a protein-sedd run directory?", field="resume"
        )
    cfg = load_config_file(path)  # bounded, no aliases or interpolations: see config/files.py
    trainer = cfg.get("trainer")
    if isinstance(trainer, DictConfig) and "patience" not in trainer:
        trainer.patience = 0  # a run from before trainer.patience: early stopping off, as it trained
    if isinstance(trainer, DictConfig) and "keep_best" not in trainer:
        trainer.keep_best = False  # a run from before trainer.keep_best: no best/ it did not write before
    if overrides:
        if any("=" not in o or o.split("=", 1)[0] in GROUPS for o in overrides):
            raise UserError(
                "{resume} takes key=value overrides only (e.g. trainer.lr=1e-4); config groups are fixed",
                field="resume",
            )
        OmegaConf.set_struct(cfg, True)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
        except OmegaConfBaseException as err:
            raise UserError(
                f"bad override on {{resume}} ({' '.join(str(err).split())[:200]})", field="resume"
            ) from None
    return cfg
