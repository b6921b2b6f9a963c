"""The model folder: one writer and one reader for what a network is stored as.

A model folder holds `model.safetensors` (the weights, never pickled) and `config.yaml` (the resolved run
config: model, graph, noise, alphabet, lengths, data record). A training checkpoint is one (plus
trainer_state.pt, `training/checkpoint.py`), and so is a saved model (plus provenance.json and a model
card, `ProteinSEDD.save_pretrained`); a guide folder stores its weights the same way (`write_weights`,
`load_network`) beside its own guide.json. The names live here, and this module imports nothing heavy at
the top, so the output-safety checks that recognise a model folder load no torch.
"""

from __future__ import annotations

from pathlib import Path

from protein_sedd.errors import UserError

WEIGHTS = "model.safetensors"  # the (EMA) weights
CONFIG = "config.yaml"  # the resolved run config: model, graph, noise, alphabet, lengths, data record
CHECKPOINT_DIR = "checkpoint"  # inside a run directory


def save_model_folder(folder: Path, network, config, *, atomic_files: bool = False) -> None:
    """Write `network`'s weights, then `config`, into the existing `folder`.

    A folder that is swapped in whole afterwards (a checkpoint's temporary folder) takes plain writes;
    `atomic_files` replaces each file by a rename instead (a saved model updated in place), so a reader
    never sees half a file.
    """
    from omegaconf import OmegaConf

    from protein_sedd.io.atomic import atomic_path

    if atomic_files:
        with atomic_path(folder / WEIGHTS) as tmp:
            write_weights(tmp, network)
        with atomic_path(folder / CONFIG) as tmp:
            OmegaConf.save(config, tmp)
    else:
        write_weights(folder / WEIGHTS, network)
        OmegaConf.save(config, folder / CONFIG)
        (folder / CONFIG).chmod(_shareable())


def load_model_folder(folder: Path, device="cpu"):
    """(network in eval mode on `device`, config) of a model folder: the config bounded and validated
    before the network is built, the weights checked against it (names, shapes, finite values)."""
    from protein_sedd.model.networks import build_network

    config = load_config(folder)
    network = load_network(folder / WEIGHTS, lambda: build_network(config.model), CONFIG)
    return network.to(device).eval(), config


def load_config(folder: Path):
    """A model folder's config, bounded (see config/files.py) and validated before any model is built."""
    from protein_sedd.config.checks import validate_checkpoint_config
    from protein_sedd.config.files import load_config_file

    config = load_config_file(folder / CONFIG)
    validate_checkpoint_config(config, folder / CONFIG)
    return config


def write_weights(path: Path, module) -> None:
    """`module`'s state dict as safetensors at `path` (on the CPU, contiguous), with a new file's usual
    permissions (safetensors itself creates its files 0600; a model is shareable)."""
    from safetensors.torch import save_file

    weights = {k: v.detach().contiguous().cpu() for k, v in saved_state(module).items()}
    save_file(weights, str(path), metadata={"format": "pt"})
    Path(path).chmod(_shareable())


def tied_names(module) -> set[str]:
    """Names of parameters that are another parameter under a second name (ESM-2's output projection is
    its input embedding): stored once, under the first name, and tied again when the module is built."""
    seen, tied = set(), set()
    for name, parameter in module.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            tied.add(name)
        seen.add(id(parameter))
    return tied


def saved_state(module) -> dict:
    """The state dict a weights file holds: every tensor once (tied names left out)."""
    tied = tied_names(module)
    return {name: tensor for name, tensor in module.state_dict().items() if name not in tied}


FLOATING = {"F64", "F32", "F16", "BF16"}  # safetensors' names of the dtypes a float weight may be stored in


class _Declared:
    """A tensor as a safetensors header declares it: its shape and dtype, no data."""

    def __init__(self, shape, dtype: str):
        self.shape, self.dtype = tuple(shape), dtype


def load_network(path: Path, build, config_name: str, fix: str = ""):
    """`build()`'s module holding the weights at `path`, refusing an unreadable file, weights that do not
    match the architecture `config_name` describes, a float weight stored as another dtype, and NaN or
    infinite values (a diverged run: its designs would be all X). The file's header (names, shapes,
    dtypes) is checked first against a skeleton of `build()` on the meta device, which allocates nothing:
    a config that declares billions of parameters fails on the header before the real module is built.
    `fix` ends the messages that have one ("; train the guide again")."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    header = _header(path, fix)
    with torch.device("meta"):
        skeleton = build()
    check_weights(skeleton, header, path, config_name)
    for name, tensor in saved_state(skeleton).items():
        if tensor.is_floating_point() and header[name].dtype not in FLOATING:
            raise UserError(
                f"{path}: weight {name!r} is stored as {header[name].dtype}, not floating point; "
                f"unusable{fix}"
            )
    try:
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable safetensors file ({err}){fix}") from None
    bad = first_non_finite(weights)
    if bad is not None:
        raise UserError(f"{path}: weight {bad!r} holds NaN or infinite values; unusable{fix}")
    module = build()
    module.load_state_dict(weights, strict=not tied_names(module))  # tied names: the same tensors
    return module


def _header(path: Path, fix: str) -> dict:
    """{name: _Declared} from a safetensors file's header, reading no tensor data."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            slices = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
            return {name: _Declared(part.get_shape(), part.get_dtype()) for name, part in slices.items()}
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable safetensors file ({err}){fix}") from None


def check_weights(module, weights: dict, where: Path, config_name: str = CONFIG) -> None:
    """Refuse weights that do not match the config's architecture, naming the first mismatch."""
    expected = saved_state(module)  # a tied name may be left out (a weights file) or given (a state dict)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(module.state_dict()))
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise UserError(
            f"{where}: weights do not match {config_name} "
            f"({what}; {len(missing)} missing, {len(unexpected)} unexpected)"
        )
    for name, tensor in module.state_dict().items():
        if name in weights and tuple(weights[name].shape) != tuple(tensor.shape):
            raise UserError(
                f"{where}: weights do not match {config_name}: "
                f"{name!r} has shape {tuple(weights[name].shape)}, "
                f"the config implies {tuple(tensor.shape)}"
            )


def first_non_finite(tensors: dict) -> str | None:
    """The name of the first floating-point tensor holding a NaN or an infinity, or None."""
    import torch

    for name, tensor in tensors.items():
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not torch.isfinite(tensor).all():
            return name
    return None


def _shareable() -> int:
    from protein_sedd.io.atomic import new_file_mode

    return new_file_mode()
