"""The model that ships inside the package, so `protein-sedd design` works right after installing.

`acyp-tiny/` holds model.safetensors (EMA weights), config.yaml and provenance.json (data, split,
steps, command and held-out metrics); `workflows/bundle_model.py` writes it from a run directory.
"""

from __future__ import annotations

from pathlib import Path

from protein_sedd.errors import UserError

DEFAULT_MODEL = "acyp-tiny"


def bundled_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    path = Path(__file__).resolve().parent / name
    if not (path / "model.safetensors").is_file():
        raise UserError(
            f"no bundled model {name!r} in this installation; "
            "pass --checkpoint RUN_DIR (a run directory from `protein-sedd train`)"
        )
    return path
