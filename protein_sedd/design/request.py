"""What to design: n sequences, their lengths or the residues they keep, turned into the sampler's start rows.

n designs, with at most one of:
- nothing: lengths drawn from the model's training length distribution (`LengthPrior`),
- `length` (all of one length), `length_range` 'A:B' (lengths uniform in A..B), or `lengths` (one per design),
- `template` 'MKV__G': fixed residues and '_' to design, the same row n times,
- `fix` with `redesign` '10-30,55-60': a sequence with those ranges designed; `fix` is a FASTA file (a Path,
  its first record) or the sequence itself (a str).

    DesignRequest(n, length_range="80:120").starts(LengthPrior.from_config(config), seed)

A start row holds the mask token at every position to design and a real token at every fixed one.
Lengths come from a CPU generator seeded with the design seed, so they never depend on the device.
Mistakes name the parameter (`UserError.field`: length, template, redesign, ...), checked when the request is
made; the template and the fixed sequence are read then too, so a bad file shows before any model loads.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from protein_sedd.config.limits import MAX_DESIGNS, check_int
from protein_sedd.data.alphabet import ALPHABET, GAPS, InvalidResidue
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.errors import UserError, check_type
from protein_sedd.io.fasta import normalised_sequence, read_fasta

DESIGN_CHAR = "_"


class DesignStarts(NamedTuple):
    rows: list[torch.Tensor]  # one start row per design
    note: str  # added to every design's FASTA header ('' for free design)


class FixedStart(NamedTuple):
    row: torch.Tensor  # the template, or the fixed sequence masked over its redesigned ranges
    note: str  # header note: where the fixed residues came from
    field: str  # the parameter it came from (template or fix), for length messages
    where: str  # how a message names it: 'template', or 'fix FILE' / 'fix sequence'


@dataclass(frozen=True)
class DesignRequest:
    n: int
    length: int | None = None
    length_range: str | None = None
    template: str | None = None
    fix: Path | str | None = None
    redesign: str | None = None
    lengths: tuple[int, ...] | None = None
    fixed: FixedStart | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Types, conflicting choices, then the template or fixed sequence (read once, here)."""
        check_int("n", self.n, 1, MAX_DESIGNS)
        if self.length is not None and (
            isinstance(self.length, bool) or not isinstance(self.length, numbers.Integral)
        ):
            raise UserError(f"{{length}} {self.length!r}: must be a whole number", field="length")
        for name in ("length_range", "template", "redesign"):
            check_type(name, getattr(self, name), str, "a string")
        check_type("fix", self.fix, (str, Path), "a sequence (str) or a FASTA file (Path)")
        if self.lengths is not None:
            if isinstance(self.lengths, (str, bytes)) or not isinstance(self.lengths, Sequence):
                raise UserError("{lengths}: give a list of whole numbers, one per design", field="lengths")
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in self.lengths):
                raise UserError("{lengths}: every length must be a whole number", field="lengths")
            object.__setattr__(self, "lengths", tuple(int(v) for v in self.lengths))
        self._check_choices()
        object.__setattr__(self, "fixed", self._read_fixed())

    def _check_choices(self) -> None:
        lengths = ("length", "length_range", "lengths")
        if self.length is not None and self.length_range is not None:
            raise UserError(
                "give one of {length} or {length_range}, not both", field=("length", "length_range")
            )
        if self.lengths is not None:
            if self.length is not None or self.length_range is not None:
                raise UserError(
                    "give one of {lengths}, {length} or {length_range}, not several", field=lengths
                )
            if len(self.lengths) != self.n:
                raise UserError(
                    f"{{lengths}}: {len(self.lengths)} given for n={self.n} designs; give one per design",
                    field="lengths",
                )
        conditional = self.template is not None or self.fix is not None
        if conditional and any(getattr(self, name) is not None for name in lengths):
            raise UserError(
                "{length}/{length_range} conflict with {template}/{fix}: the template fixes the length",
                field=("length", "length_range", "template", "fix"),
            )
        if self.template is not None and self.fix is not None:
            raise UserError(
                "give one of {template} or {fix}/{redesign}, not both", field=("template", "fix", "redesign")
            )
        if self.fix is not None and self.redesign is None:
            raise UserError(
                "{fix} needs {redesign} RANGES (1-based, e.g. 10-30,55-60): which positions to design",
                field=("fix", "redesign"),
            )
        if self.redesign is not None and self.fix is None:
            raise UserError(
                "{redesign} needs {fix} SEQ.fasta: the sequence whose ranges are redesigned",
                field=("redesign", "fix"),
            )

    def _read_fixed(self) -> FixedStart | None:
        if self.template is not None:
            return FixedStart(parse_template(self.template), "", "template", "{template}")
        if isinstance(self.fix, str):  # the sequence itself (the Python API)
            sequence = normalised_sequence(self.fix, "fix sequence")
            ranges = parse_ranges(self.redesign, len(sequence), "the fix sequence")
            note = f" redesign={_ranges_text(ranges)}"
            return FixedStart(redesign_start(sequence, ranges), note, "fix", "{fix} sequence")
        if self.fix is not None:
            record = read_fasta(self.fix)[0]
            ranges = parse_ranges(self.redesign, len(record.sequence), f"{self.fix} record {record.id!r}")
            note = f" source={record.id} redesign={_ranges_text(ranges)}"
            return FixedStart(redesign_start(record.sequence, ranges), note, "fix", f"{{fix}} {self.fix}")
        return None

    @property
    def draws_lengths(self) -> bool:
        """Whether design lengths come from the model's length distribution (no length was asked for)."""
        chosen = (self.template, self.fix, self.lengths, self.length, self.length_range)
        return all(value is None for value in chosen)

    def starts(self, prior: LengthPrior, seed: int) -> DesignStarts:
        """The start rows, checked against the model's maximum length (`prior.max_length`)."""
        if self.fixed is not None:
            row = self.fixed.row
            check_length(len(row), prior.max_length, self.fixed.where, self.fixed.field)
            designed = int((row == ALPHABET.mask_index).sum())
            return DesignStarts([row] * self.n, f"{self.fixed.note} designed={designed}")
        generator = torch.Generator().manual_seed(seed)  # on the CPU: lengths never depend on the device
        return DesignStarts(masked_starts(self._lengths(prior, generator)), "")

    def _lengths(self, prior: LengthPrior, generator: torch.Generator) -> list[int]:
        if self.lengths is not None:
            for value in self.lengths:
                check_length(value, prior.max_length, f"{{lengths}}: {value}", "lengths")
            return list(self.lengths)
        if self.length is not None:
            check_length(self.length, prior.max_length, f"{{length}} {self.length}", "length")
            return [self.length] * self.n
        if self.length_range is not None:
            low, high = parse_length_range(self.length_range)
            for end in (low, high):
                check_length(end, prior.max_length, f"{{length_range}} {self.length_range}", "length_range")
            return torch.randint(low, high + 1, (self.n,), generator=generator).tolist()
        return prior.sample(self.n, generator)


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ",".join(f"{a}-{b}" for a, b in ranges)


# -- start rows and their parsers --------------------------------------------------------------------------
def masked_starts(lengths: list[int], mask_index: int = ALPHABET.mask_index) -> list[torch.Tensor]:
    """Unconditional design: every position masked."""
    return [torch.full((length,), mask_index, dtype=torch.long) for length in lengths]


def parse_template(template: str) -> torch.Tensor:
    """'MKV__G' -> tokens with the mask at each '_'; letters follow the alphabet's normalisation policy."""
    text = template.strip()
    if text.endswith("*"):
        text = text[:-1]  # a trailing stop, as in FASTA
    if not text:
        raise UserError(
            "{template} is empty: give residues and '_' for each position to design, e.g. MKV__G",
            field="template",
        )
    tokens = []
    for position, letter in enumerate(text, start=1):
        if letter == DESIGN_CHAR:
            tokens.append(ALPHABET.mask_index)
            continue
        if letter in GAPS:
            raise UserError(
                f"{{template}}: gap {letter!r} at position {position}; use '_' for a position to design",
                field="template",
            )
        try:
            residue = ALPHABET.normalise(letter)  # upper case, U -> C, B -> X, ...
        except InvalidResidue:
            residue = ""
        if len(residue) != 1:
            raise UserError(
                f"{{template}}: invalid letter {letter!r} at position {position}; "
                "use residue letters and '_'",
                field="template",
            )
        tokens.append(ALPHABET.residues.index(residue))
    if ALPHABET.mask_index not in tokens:
        raise UserError("{template} has no '_': mark at least one position to design", field="template")
    return torch.tensor(tokens, dtype=torch.long)


def parse_ranges(text: str, length: int, source: str) -> list[tuple[int, int]]:
    """'10-30,55-60' (1-based, inclusive; a single number is one position) within 1..length."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise UserError(
                f"{{redesign}}: {part!r} is not a range; write 1-based ranges like 10-30,55-60",
                field="redesign",
            )
        start = int(match.group(1))
        end = int(match.group(2) or start)
        if start < 1 or end < start:
            raise UserError(
                f"{{redesign}}: range {part!r} is empty or starts below 1 (positions are 1-based)",
                field="redesign",
            )
        if end > length:
            raise UserError(
                f"{{redesign}}: range {part!r} goes past the end of {source} ({length} residues)",
                field="redesign",
            )
        ranges.append((start, end))
    return ranges


def redesign_start(sequence: str, ranges: list[tuple[int, int]]) -> torch.Tensor:
    """The sequence's tokens with the mask over every range (1-based, inclusive)."""
    tokens = ALPHABET.encode(sequence)
    for start, end in ranges:
        tokens[start - 1 : end] = ALPHABET.mask_index
    return tokens


def parse_length_range(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"{{length_range}} {text!r}: write A:B, e.g. 80:120", field="length_range")
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        raise UserError(f"{{length_range}} {text}: A must not exceed B", field="length_range")
    return low, high


def check_length(length: int, max_length: int, where: str, field: str) -> None:
    """`where` names the length's source, with `{field}` where the parameter goes."""
    if length < 1:
        raise UserError(f"{where}: length {length} must be >= 1", field=field)
    if length > max_length:
        raise UserError(
            f"{where}: length {length} exceeds the model's maximum length {max_length}", field=field
        )
