"""Start rows and the parsers behind them: all-mask rows of given lengths, templates, a sequence with
ranges to redesign. `design_request` puts them together from the user's options.

A start row holds the mask token at every position to design and a real token at every fixed one.
Every parser raises `UserError` with one line naming the option and the offending part.
"""

from __future__ import annotations

import re

import torch

from protein_sedd.data.alphabet import ALPHABET, GAPS, InvalidResidue
from protein_sedd.errors import UserError

DESIGN_CHAR = "_"


def masked_starts(lengths: list[int], mask_index: int = ALPHABET.mask_index) -> list[torch.Tensor]:
    """Unconditional design: every position masked."""
    return [torch.full((length,), mask_index, dtype=torch.long) for length in lengths]


def parse_template(template: str) -> torch.Tensor:
    """'MKV__G' -> tokens with the mask at each '_'; letters follow the alphabet's normalisation policy."""
    text = template.strip()
    if text.endswith("*"):
        text = text[:-1]  # a trailing stop, as in FASTA
    if not text:
        raise UserError("--template is empty: give residues and '_' for each position to design, e.g. MKV__G")
    tokens = []
    for position, letter in enumerate(text, start=1):
        if letter == DESIGN_CHAR:
            tokens.append(ALPHABET.mask_index)
            continue
        if letter in GAPS:
            raise UserError(
                f"--template: gap {letter!r} at position {position}; use '_' for a position to design"
            )
        try:
            residue = ALPHABET.normalise(letter)  # upper case, U -> C, B -> X, ...
        except InvalidResidue:
            residue = ""
        if len(residue) != 1:
            raise UserError(
                f"--template: invalid letter {letter!r} at position {position}; use residue letters and '_'"
            )
        tokens.append(ALPHABET.residues.index(residue))
    if ALPHABET.mask_index not in tokens:
        raise UserError("--template has no '_': mark at least one position to design")
    return torch.tensor(tokens, dtype=torch.long)


def parse_ranges(text: str, length: int, source: str) -> list[tuple[int, int]]:
    """'10-30,55-60' (1-based, inclusive; a single number is one position) within 1..length."""
    ranges = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise UserError(f"--redesign: {part!r} is not a range; write 1-based ranges like 10-30,55-60")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        if start < 1 or end < start:
            raise UserError(f"--redesign: range {part!r} is empty or starts below 1 (positions are 1-based)")
        if end > length:
            raise UserError(f"--redesign: range {part!r} goes past the end of {source} ({length} residues)")
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
        raise UserError(f"--length-range {text!r}: write A:B, e.g. 80:120")
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        raise UserError(f"--length-range {text}: A must not exceed B")
    return low, high


def check_length(length: int, max_length: int, what: str) -> None:
    if length < 1:
        raise UserError(f"{what}: length {length} must be >= 1")
    if length > max_length:
        raise UserError(f"{what}: length {length} exceeds the model's maximum length {max_length}")
