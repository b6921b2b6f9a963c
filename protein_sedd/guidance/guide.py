"""A trained guide: its network, what its outputs mean (classes or a value), and log p(y | x_t) of a target.

A guide folder holds `guide.safetensors` (the weights) and `guide.json` (the network config, the task,
the classes or the label scale, the diffusion model it was trained against, and its training report).

- classify: outputs are class logits; log p(y | x_t) = log_softmax(logits)[class of y].
- regress: outputs are a mean mu and a log variance v of the label scaled to z = (y - mean) / std;
  log p(y | x_t) = log N(z; mu, exp(v)) - log std (a Gaussian likelihood in the label's own units).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from protein_sedd.errors import UserError
from protein_sedd.guidance.network import GuideConfig, GuideNet

WEIGHTS = "guide.safetensors"
CONFIG = "guide.json"
KIND = "protein-sedd-guide"
FORMAT = 1
COMMAND = "train-guide"  # the owner of a guide folder (protein_sedd/io/outputs.py)


@dataclass
class Guide:
    network: GuideNet
    task: str  # classify or regress
    classes: list[float] = field(default_factory=list)  # classify: the label of each output
    label_mean: float = 0.0  # regress: the scale of the training labels
    label_std: float = 1.0
    record: dict = field(default_factory=dict)  # the diffusion model, graph, noise and training report
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "guide"

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write guide.safetensors and guide.json into `folder` (see `save_guide`)."""
        return save_guide(self, Path(folder), overwrite=overwrite)

    def check_target(self, target: float) -> None:
        """A classifier's target must be one of its classes; a regressor takes any finite number."""
        if (
            isinstance(target, bool)
            or not isinstance(target, (int, float))
            or not math.isfinite(float(target))
        ):
            raise UserError(f"{{target}} {target!r}: expected a finite number", field="target")
        if self.task == "classify" and float(target) not in self.classes:
            shown = ", ".join(f"{c:g}" for c in self.classes)
            raise UserError(
                f"{{target}} {target:g}: not a class of the guide {self.name} (classes: {shown})",
                field="target",
            )

    def log_likelihood(
        self, onehot: torch.Tensor, mask_fraction: torch.Tensor, lengths: torch.Tensor, target: float
    ) -> torch.Tensor:
        """log p(y = target | x_t) [B] for one-hot noisy sequences [B, L, V] at mask fractions [B]."""
        outputs = self.network(onehot, mask_fraction, lengths)
        if self.task == "classify":
            return F.log_softmax(outputs, dim=-1)[:, self.classes.index(float(target))]
        return self.gaussian_log_likelihood(outputs, torch.full_like(outputs[:, 0], float(target)))

    def gaussian_log_likelihood(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """log N(y; mean, variance) [B] in the label's units, from the regressor's outputs [B, 2]."""
        z = (labels - self.label_mean) / self.label_std
        mean, log_var = outputs[:, 0], outputs[:, 1]
        return -0.5 * ((z - mean) ** 2 / log_var.exp() + log_var + math.log(2 * math.pi)) - math.log(
            self.label_std
        )

    def config_record(self) -> dict:
        return {
            "kind": KIND,
            "format": FORMAT,
            "network": self.network.config.to_dict(),
            "task": self.task,
            "classes": self.classes,
            "label_mean": self.label_mean,
            "label_std": self.label_std,
            **self.record,
        }


# what a guide's network may declare: far above any train-guide default (64 wide, 3 layers, kernel 5),
# far below an allocation that would exhaust memory before its weights are compared with them
GUIDE_BOUNDS = {"hidden_size": 4096, "n_layers": 32, "kernel_size": 63}


def check_guide_record(record: dict, where: str) -> GuideConfig:
    """The network config of a guide record, every field checked as user input (the file may have been
    edited): whole numbers in bounds, the alphabet's vocabulary, classes that match the outputs, a finite
    positive label scale. A mistake names `where` and the field."""
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.guidance.labels import MAX_CLASSES, MAX_LABEL

    def refuse(what: str):
        return UserError(f"{where}: {what}; the file was edited or damaged: train the guide again")

    network = record.get("network")
    if not isinstance(network, dict):
        raise refuse(f"network {network!r} is not a table of settings")
    values = {
        **GuideConfig().to_dict(),
        **{k: v for k, v in network.items() if k in GuideConfig.__dataclass_fields__},
    }
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(f"network.{name} {value!r} is not a whole number")
    for name, high in GUIDE_BOUNDS.items():
        if not 1 <= values[name] <= high:
            raise refuse(f"network.{name} {values[name]} is outside 1..{high}")
    if values["kernel_size"] % 2 == 0:
        raise refuse(f"network.kernel_size {values['kernel_size']} is even (the convolutions are centred)")
    if values["vocab_size"] != ALPHABET.size:
        raise refuse(f"network.vocab_size {values['vocab_size']} is not this alphabet's {ALPHABET.size}")
    classes = record.get("classes") or []
    if not isinstance(classes, list) or not all(
        isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in classes
    ):
        raise refuse(f"classes {classes!r} are not a list of numbers")
    if record["task"] == "classify":
        if not 2 <= len(classes) <= MAX_CLASSES or len(set(classes)) != len(classes):
            raise refuse(f"classes {classes!r}: a classifier has 2 to {MAX_CLASSES} distinct classes")
        if values["n_outputs"] != len(classes):
            raise refuse(f"network.n_outputs {values['n_outputs']} is not the {len(classes)} classes")
    elif values["n_outputs"] != 2:
        raise refuse(f"network.n_outputs {values['n_outputs']}: a regressor has 2 (mean, log variance)")
    for name, default in (("label_mean", 0.0), ("label_std", 1.0)):
        value = record.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= MAX_LABEL:
            raise refuse(f"{name} {value!r} is not a finite number up to {MAX_LABEL:.0e}")
    if not record.get("label_std", 1.0) > 0:
        raise refuse(f"label_std {record['label_std']!r} is not positive")
    return GuideConfig(**values)


def guide_files(folder: Path | None) -> list[Path]:
    """The files of a guide folder (inputs no output may overwrite); none for no folder."""
    return [] if folder is None else [Path(folder) / WEIGHTS, Path(folder) / CONFIG]


def is_guide_dir(folder: Path) -> bool:
    try:
        record = json.loads((Path(folder) / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("kind") == KIND


def save_guide(guide: Guide, folder: Path, *, overwrite: bool = False, option: str = "{folder}") -> Path:
    """Write `folder`: new, empty, an earlier guide's (train-guide's own), or anything with `overwrite`
    (then only the guide's two files are replaced). The weights first, then the config, each atomically."""
    from protein_sedd.io.atomic import atomic_path, write_json_atomic
    from protein_sedd.io.outputs import OutputFolder
    from protein_sedd.model.folder import write_weights

    output = OutputFolder(Path(folder), COMMAND, option)
    output.check(overwrite=overwrite)
    with output:  # locked: a second run on this folder is refused until this one ends
        output.record([WEIGHTS, CONFIG])
        with atomic_path(output.path / WEIGHTS) as tmp:
            write_weights(tmp, guide.network)
        write_json_atomic(output.path / CONFIG, guide.config_record())  # last: marks the guide whole
    guide.path = output.path
    return output.path


def load_guide(folder: str | Path, device: str | torch.device = "cpu") -> Guide:
    """The guide in `folder` (from `train-guide --out`), in eval mode on `device`."""
    from protein_sedd.model.folder import load_network

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"{{guide}} {folder}: no such folder; pass the folder written by `protein-sedd train-guide`",
            field="guide",
        )
    if not is_guide_dir(folder) or not (folder / WEIGHTS).is_file():
        raise UserError(
            f"{{guide}} {folder}: not a guide (expected {CONFIG} and {WEIGHTS} from train-guide)",
            field="guide",
        )
    record = json.loads((folder / CONFIG).read_text())
    if record.get("format") != FORMAT or record.get("task") not in ("classify", "regress"):
        raise UserError(f"guide {folder}: {CONFIG} is of an unknown format; train the guide again")
    config = check_guide_record(record, f"guide {folder}: {CONFIG}")  # before anything is built from it
    network = load_network(folder / WEIGHTS, lambda: GuideNet(config), CONFIG, "; train the guide again")
    known = {"kind", "format", "network", "task", "classes", "label_mean", "label_std"}
    return Guide(
        network.to(device).eval(),
        record["task"],
        [float(c) for c in record.get("classes") or []],
        float(record.get("label_mean", 0.0)),
        float(record.get("label_std", 1.0)),
        {k: v for k, v in record.items() if k not in known},
        folder,
    )
