"""One design request: what to design, from the user's options, turned into the sampler's start rows.

n designs, with at most one of:
- nothing: lengths drawn from the checkpoint's training length distribution (`LengthPrior`),
- `length` (all of one length), `length_range` 'A:B' (lengths uniform in A..B), or `lengths` (one per design),
- `template` 'MKV__G': fixed residues and '_' to design, the same row n times,
- `fix` with `redesign` '10-30,55-60': a sequence with those ranges designed; `fix` is a FASTA file (a Path,
  its first record) or the sequence itself (a str).

    DesignRequest(n, length_range="80:120").starts(LengthPrior.from_config(config), seed)

Lengths come from a CPU generator seeded with the design seed, so they never depend on the device.
Messages name the command-line options (--length, --template, ...), as the `design` command shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.design_starts import (
    check_length,
    masked_starts,
    parse_length_range,
    parse_ranges,
    parse_template,
    redesign_start,
)
from protein_sedd.data.fasta import FastaRecord, normalised_sequence, read_fasta
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.errors import UserError


class FixedStart(NamedTuple):
    row: torch.Tensor  # the template, or the --fix sequence masked over --redesign
    note: str  # header note: where the fixed residues came from


class DesignStarts(NamedTuple):
    rows: list[torch.Tensor]  # one start row per design
    note: str  # added to every design's FASTA header ('' for free design)


@dataclass(frozen=True)
class DesignRequest:
    n: int
    length: int | None = None
    length_range: str | None = None
    template: str | None = None
    fix: Path | str | None = None
    redesign: str | None = None
    lengths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        """Conflicting options are refused at once, before anything is read."""
        if self.length is not None and self.length_range is not None:
            raise UserError("give one of --length or --length-range, not both")
        if self.lengths is not None:
            if self.length is not None or self.length_range is not None:
                raise UserError("give one of lengths, length or length_range, not several")
            if len(self.lengths) != self.n:
                raise UserError(
                    f"lengths: {len(self.lengths)} given for n={self.n} designs; give one per design"
                )
        conditional = self.template is not None or self.fix is not None
        free_lengths = (self.length, self.length_range, self.lengths)
        if conditional and any(choice is not None for choice in free_lengths):
            raise UserError(
                "--length/--length-range conflict with --template/--fix: the template fixes the length"
            )
        if self.template is not None and self.fix is not None:
            raise UserError("give one of --template or --fix/--redesign, not both")
        if self.fix is not None and self.redesign is None:
            raise UserError(
                "--fix needs --redesign RANGES (1-based, e.g. 10-30,55-60): which positions to design"
            )
        if self.redesign is not None and self.fix is None:
            raise UserError("--redesign needs --fix SEQ.fasta: the sequence whose ranges are redesigned")

    @cached_property
    def fixed(self) -> FixedStart | None:
        """The --template or --fix/--redesign start, read and parsed once; None for free design."""
        if self.template is not None:
            return FixedStart(parse_template(self.template), "")
        if isinstance(self.fix, str):  # the sequence itself (the Python API)
            record = FastaRecord("sequence", "sequence", normalised_sequence(self.fix, "fix sequence"))
            ranges = parse_ranges(self.redesign, len(record.sequence), "fix sequence")
            return FixedStart(redesign_start(record.sequence, ranges), f" redesign={_ranges_text(ranges)}")
        if self.fix is not None:
            record = read_fasta(self.fix)[0]
            ranges = parse_ranges(self.redesign, len(record.sequence), f"{self.fix} record {record.id!r}")
            note = f" source={record.id} redesign={_ranges_text(ranges)}"
            return FixedStart(redesign_start(record.sequence, ranges), note)
        return None

    @property
    def draws_lengths(self) -> bool:
        """Whether design lengths come from the checkpoint's length distribution (no length was asked for)."""
        chosen = (self.template, self.fix, self.lengths, self.length, self.length_range)
        return all(value is None for value in chosen)

    def read_inputs(self) -> None:
        """Read and check --template or --fix/--redesign now, without a checkpoint (`starts` reuses them)."""
        _ = self.fixed

    def starts(self, prior: LengthPrior, seed: int) -> DesignStarts:
        """The start rows, checked against the model's maximum length (`prior.max_length`)."""
        if self.fixed is not None:
            row = self.fixed.row
            where = "--template" if self.template is not None else f"--fix {self.fix}"
            check_length(len(row), prior.max_length, where)
            designed = int((row == ALPHABET.mask_index).sum())
            return DesignStarts([row] * self.n, f"{self.fixed.note} designed={designed}")
        generator = torch.Generator().manual_seed(seed)  # on the CPU: lengths never depend on the device
        return DesignStarts(masked_starts(self._lengths(prior, generator)), "")

    def _lengths(self, prior: LengthPrior, generator: torch.Generator) -> list[int]:
        if self.lengths is not None:
            for value in self.lengths:
                check_length(value, prior.max_length, f"lengths: {value}")
            return list(self.lengths)
        if self.length is not None:
            check_length(self.length, prior.max_length, f"--length {self.length}")
            return [self.length] * self.n
        if self.length_range is not None:
            low, high = parse_length_range(self.length_range)
            for end in (low, high):
                check_length(end, prior.max_length, f"--length-range {self.length_range}")
            return torch.randint(low, high + 1, (self.n,), generator=generator).tolist()
        return prior.sample(self.n, generator)


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}-{b}" for a, b in ranges)
