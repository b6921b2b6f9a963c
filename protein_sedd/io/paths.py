"""Checks on output paths, made before any work starts so a bad path never leaves half an output."""

from __future__ import annotations

import os
from pathlib import Path

from protein_sedd.errors import UserError


def check_output_path(path: Path, option: str, field: str | None = None) -> None:
    """The nearest existing ancestor of `path` must be a writable folder (missing folders get created).
    `option` names it in the message (`{field}` there when `field` is the parameter)."""
    ancestor = Path(path).absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: {ancestor} is a file, not a folder", field=field)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {ancestor} is not writable", field=field)
