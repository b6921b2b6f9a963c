"""Fine-tuning: a run that starts from a parent checkpoint's weights (`protein-sedd train --init-from`).

The parent fixes what its weights mean, so the run takes its `model` section (the architecture), its `graph`
and its `noise` schedule; an override that would change any of them is refused, naming the key (one that
restates the parent's value is accepted). `model.dropout` is the exception: it is regularisation, not
architecture. Trainer, data and seed are the run's own. Optimiser, step and EMA start fresh; the EMA starts
at the parent's weights (see `load_parent_weights`). The run's config records the parent as
`init_from: {source, path, sha256, step}`: the sha256 is that of its `model.safetensors`, checked again
when the weights are loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.datasets import sha256_of
from protein_sedd.errors import UserError
from protein_sedd.model.folder import WEIGHTS, load_config, load_model_folder
from protein_sedd.model.sources import DEFAULT_MODEL, load_checkpoint, resolve_checkpoint_dir

ALIASES = {"bundled": DEFAULT_MODEL}  # `--init-from bundled`: the model that ships in the package
INHERITED = ("model", "graph", "noise")  # the sections that give the parent's weights their meaning
FREE_KEYS = {"model.dropout"}  # in an inherited section, yet the run's own when overridden


def _override_key(override: str) -> str:
    """`model.n_layers` of `model.n_layers=2`, `model` of `model=small`, `noise` of `~noise`."""
    return override.split("=", 1)[0].lstrip("+~").split("@", 1)[0]


def _inherited(key: str) -> bool:
    return key.split(".", 1)[0] in INHERITED and key not in FREE_KEYS


def _first_difference(prefix: str, ours, theirs) -> tuple[str, object, object] | None:
    """The first key under `prefix` where two plain config values differ: (key, ours, theirs)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = [*theirs, *(k for k in ours if k not in theirs)]
        for key in sorted(keys, key=lambda k: k == "name"):  # a name last: a size says more
            if f"{prefix}.{key}" in FREE_KEYS:
                continue
            found = _first_difference(f"{prefix}.{key}", ours.get(key), theirs.get(key))
            if found is not None:
                return found
        return None
    return None if ours == theirs else (prefix, ours, theirs)


def parent_record(source: str) -> tuple[Path, DictConfig, dict]:
    """The parent's checkpoint folder, its validated config and the record a fine-tuning run keeps."""
    name = ALIASES.get(source, source)
    if name != source and Path(source).exists():
        name = source  # a folder named like an alias wins, as paths do everywhere else
    try:
        checkpoint_dir = resolve_checkpoint_dir(name)
        config = load_config(checkpoint_dir)
        # the weights too (readable, matching the config, finite), before the run's folder is claimed:
        # a truncated, pickled or NaN parent then leaves no run folder behind
        load_model_folder(checkpoint_dir)
    except UserError as err:
        raise UserError("{init_from}: " + err.message(), field="init_from") from None
    tokens = (config.get("alphabet") or {}).get("tokens")
    if tokens is not None and list(tokens) != ALPHABET.tokens:
        raise UserError(
            f"{{init_from}} {source}: its alphabet differs from this version's; it cannot be fine-tuned",
            field="init_from",
        )
    step = config.get("step", 0)
    record = {
        "source": name,
        "path": str(checkpoint_dir.resolve()),
        "sha256": sha256_of(checkpoint_dir / WEIGHTS),
        "step": int(step),
    }
    return checkpoint_dir, config, record


def inherit_from_parent(cfg: DictConfig, overrides: list[str], source: str) -> DictConfig:
    """`cfg` (composed with `overrides`) with the parent's model, graph and noise and its `init_from` record.

    An override of an inherited key whose composed value differs from the parent's is a UserError naming it.
    """
    _, parent, record = parent_record(source)
    ours = OmegaConf.to_container(cfg, resolve=True)
    theirs = OmegaConf.to_container(parent, resolve=True)
    for override in overrides:
        key = _override_key(override)
        if not _inherited(key):
            continue
        here, there = OmegaConf.select(cfg, key, default=None), OmegaConf.select(parent, key, default=None)
        plain = [OmegaConf.to_container(v) if isinstance(v, DictConfig) else v for v in (here, there)]
        found = _first_difference(key, *plain)
        if found is not None:
            where, mine, parents = found
            raise UserError(
                f"{{init_from}}: {override} would change {where} from the parent's {parents!r} to {mine!r}; "
                "fine-tuning keeps the parent's model, graph and noise (trainer, data and model.dropout "
                "may change): drop the override",
                field="init_from",
            )
    for section in INHERITED:
        if not isinstance(theirs.get(section), dict):
            raise UserError(
                f"{{init_from}} {source}: its config.yaml has no {section} section", field="init_from"
            )
        given = {_override_key(o) for o in overrides}  # a free key not given stays the parent's
        keep = {k: v for k, v in ours.get(section, {}).items() if f"{section}.{k}" in FREE_KEYS & given}
        ours[section] = {**theirs[section], **keep}
    ours["init_from"] = record
    return OmegaConf.create(ours)


def load_parent_weights(model: torch.nn.Module, record) -> None:
    """Copy the parent's (EMA) weights into a fresh model, after checking they are the recorded file.

    The trainer builds the run's EMA as a copy of the model after this, so the EMA starts at the parent
    too. A random start would put a point off the run's trajectory into the average: with the EMA's
    warm-up ramp (decay (1 + s) / (10 + s) at step s) it would still weigh 10% after one step, enough to
    spoil an early validation or checkpoint of a short fine-tune, and the parent is where the run starts.
    """
    path = Path(record.path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise UserError(
            f"init_from.path: {weights} is gone; the parent of this fine-tuning run is needed to start it"
        )
    if sha256_of(weights) != record.sha256:
        raise UserError(
            f"init_from.sha256: {weights} changed since this run was configured (sha256 differs); "
            "start the fine-tuning run again"
        )
    parent = load_checkpoint(path)
    with torch.no_grad():
        model.load_state_dict(parent.model.state_dict())
