"""Checks on output paths, made before any work starts so a bad path never leaves half an output."""

from __future__ import annotations

import os
from pathlib import Path

from protein_sedd.errors import UserError


def check_output_path(path: Path, option: str) -> None:
    """The nearest existing ancestor of `path` must be a writable folder (missing folders get created)."""
    ancestor = Path(path).absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {ancestor} is not writable")
