"""Hydra configuration: find the config tree (checkout or installed wheel) and compose it with overrides."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from protein_sedd.errors import UserError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # protein_sedd/


def resource_dir(package_name: str, checkout_name: str) -> Path:
    """A data folder of the package: inside the wheel, or at the top of a source checkout."""
    installed = PACKAGE_ROOT / package_name
    if installed.is_dir():
        return installed
    checkout = PACKAGE_ROOT.parent / checkout_name
    if checkout.is_dir():
        return checkout
    raise RuntimeError(
        f"protein-sedd is installed without its {checkout_name}/ folder (looked in {installed})"
    )


def config_dir() -> Path:
    return resource_dir("configs", "configs")


def compose_config(
    overrides: list[str] | None = None, config_name: str = "config", resolve: bool = True
) -> DictConfig:
    """Compose `configs/<config_name>.yaml` with Hydra overrides such as `model=small trainer.lr=1e-4`.

    A malformed override or a key that does not exist is a `UserError` naming the override.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides or [])
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose(config_name=config_name, overrides=overrides)
            if any(o.startswith("+") for o in overrides):
                plain = [o for o in overrides if not o.startswith("+")]
                _refuse_added_keys(overrides, compose(config_name=config_name, overrides=plain))
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(str(err).split("Config search path")[0].split())
        raise UserError(
            f"bad config override ({message}); overrides look like 'model=small trainer.lr=1e-4'"
        ) from None
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg


def _refuse_added_keys(overrides: list[str], base: DictConfig) -> None:
    """`+section.key=value` may only set a key the config already has: every setting is in its group's YAML,
    so a key the config lacks is a typo (Hydra's own hint for a mistyped key is to add it with `+`, which
    would train with the default and store the stray key)."""
    import difflib

    for override in overrides:
        if not override.startswith("+"):
            continue
        key = override.lstrip("+").split("=", 1)[0].split("@", 1)[0]
        *sections, name = key.split(".")
        node = base
        for section in sections:
            node = node.get(section) if isinstance(node, DictConfig) else None
        if isinstance(node, DictConfig) and name in node:
            continue
        where = ".".join(sections)
        known = [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
        close = difflib.get_close_matches(name, known, n=1)
        hint = (
            f"did you mean {where + '.' if where else ''}{close[0]}?"
            if close
            else (f"the {where or 'top-level'} keys are {', '.join(known)}" if known else "no such section")
        )
        raise UserError(f"config override {override!r}: the config has no key {key} ({hint})")
