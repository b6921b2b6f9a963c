"""The designs of one call: one `Design` record per sequence, its FASTA header, and the file they make.

    >design_0001 length=104 steps=1024 seed=0 predictor=analytic checkpoint=acyp-tiny
        sampler=events precision=bf16                                                 (on one line)

Infilling adds ' source=ID redesign=10-30 designed=21', sampling controls ' temperature=T top_p=P' (where
not 1) and guidance ' guide=NAME target=T guide_scale=G'. `is_design_fasta` recognises a file of such
headers: the design command may replace it, and nothing else, without --overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DESIGN_HEADER = (
    "{id} length={length} steps={steps} seed={seed} predictor={predictor} checkpoint={checkpoint}{sampling}"
    "{note}"
)
# what `is_design_fasta` recognises: every header written from DESIGN_HEADER
DESIGN_HEADER_PATTERN = re.compile(
    r">design_\d{4,} length=\d+ steps=(\d+|exact) seed=\d+ predictor=\S+ checkpoint="
)


@dataclass(frozen=True)
class Design:
    """One designed sequence and how it was made (the facts its FASTA header carries)."""

    id: str  # design_0001, design_0002, ... in request order
    sequence: str
    length: int
    steps: int | str  # or 'exact'
    seed: int
    predictor: str
    checkpoint: str  # the model's name
    note: str = ""  # infilling: ' source=ID redesign=10-30 designed=21' (empty for free design)
    sampling: str = ""  # ' sampler=events precision=bf16', then ' temperature=T top_p=P' where not 1

    @property
    def header(self) -> str:
        return DESIGN_HEADER.format(**self.__dict__)


class Designs(list):
    """The designs of one `design` call, in request order, with how much work they took."""

    network_passes: int = 0  # sequence-network evaluations (events or cache: far fewer than n * (steps + 1))
    guide_passes: int = 0  # guide forward + backward passes of sequences (this process's; 0 unguided)
    seconds: float = 0.0

    def write_fasta(self, path: str | Path) -> None:
        """Write every design as FASTA (atomically: the file appears whole or not at all)."""
        from protein_sedd.io.fasta import write_fasta

        write_fasta(path, [(d.header, d.sequence) for d in self])


def is_design_fasta(path: Path) -> bool:
    """Whether `path` is a FASTA file written by `design` (every header a design header): ours to replace."""
    try:
        with open(path, encoding="utf-8") as handle:
            headers = [line for line in handle if line.startswith(">")]
    except (OSError, UnicodeDecodeError):
        return False
    return bool(headers) and all(DESIGN_HEADER_PATTERN.match(h) for h in headers)
