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
    from protein_sedd.model.folder import read_weights

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
    try:
        network = GuideNet(GuideConfig.from_dict(record.get("network") or {}))
    except (ValueError, TypeError) as err:
        raise UserError(f"guide {folder}: unreadable guide network in {CONFIG} ({err})") from None
    read_weights(folder / WEIGHTS, network, CONFIG, "; train the guide again")
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
