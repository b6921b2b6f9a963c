"""Reading a config file from disk (a run's or a checkpoint's config.yaml), with bounds.

The trainer writes these files resolved and plain, but they can be corrupt, hand-edited or hostile, so
before OmegaConf sees the text it must be at most MAX_CONFIG_BYTES and hold no YAML anchors or aliases
(a few lines of nested aliases expand exponentially: the "billion laughs"). After loading, `${...}`
interpolations and `???` placeholders are refused: `${oc.env:...}` would read the environment of
whoever loads the checkpoint, and the trainer never writes either.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from protein_sedd.errors import UserError

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a run config is a few kB; its length histogram is the largest part
_EVENT_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _first_placeholder(value, key: str = "") -> str | None:
    """The dotted key of the first string holding an interpolation or a '???' placeholder."""
    if isinstance(value, dict):
        for name, item in value.items():
            found = _first_placeholder(item, f"{key}.{name}" if key else str(name))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_placeholder(item, f"{key}[{index}]")
            if found:
                return found
    elif isinstance(value, str) and ("${" in value or value == "???"):
        return key or "<top level>"
    return None


def load_config_file(path: Path) -> DictConfig:
    """Load `path` as a config mapping, or raise a `UserError` naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise UserError(f"{path}: unreadable config ({err.strerror or type(err).__name__})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UserError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024**2} MiB; not a protein-sedd config")
    try:
        text = data.decode("utf-8")
        for event in yaml.parse(text, Loader=_EVENT_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise UserError(f"{path}: YAML anchors and aliases ('&', '*') are not accepted in a config")
        config = OmegaConf.create(text)
        plain = OmegaConf.to_container(config, resolve=False)
    except UserError:
        raise
    except Exception as err:  # yaml and omegaconf errors come in many types
        raise UserError(f"{path}: unreadable config ({type(err).__name__})") from None
    if not isinstance(config, DictConfig):
        raise UserError(f"{path}: not a config mapping ('key: value' lines)")
    key = _first_placeholder(plain)
    if key:
        raise UserError(
            f"{path}: {key} is an interpolation or '???' placeholder; a saved config holds plain values only"
        )
    return config
