"""Options several commands share, declared once (typer's `Annotated` form):

def design(..., device: Device = "auto", threads: Threads = 0, checkpoint: Checkpoint = None): ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from protein_sedd.runtime.devices import THREADS_HELP

MODEL_HELP = (
    "Run directory (from `protein-sedd train`), its checkpoint/, a saved model folder, a Hub id (user/repo) "
    "or a bundled model's name (acyp-tiny). Default: the bundled ACYP model."
)

Device = Annotated[str, typer.Option("--device", help="auto (CUDA if present), cpu or cuda.")]
Threads = Annotated[int, typer.Option("--threads", help=THREADS_HELP)]
Checkpoint = Annotated[Optional[Path], typer.Option("--checkpoint", help=MODEL_HELP)]  # noqa: UP045 (typer)
