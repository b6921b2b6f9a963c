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
    except (HydraException, OmegaConfBaseException) as err:
        message = " ".join(str(err).split("Config search path")[0].split())
        raise UserError(
            f"bad config override ({message}); overrides look like 'model=small trainer.lr=1e-4'"
        ) from None
    if resolve:
        OmegaConf.resolve(cfg)
    return cfg
