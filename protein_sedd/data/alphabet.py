"""The token alphabet: 20 amino acids + X, a pad token, and the absorbing mask state last.

Normalisation policy for residues outside the 21 letters (applied by `Alphabet.normalise`):

- lower case is upper-cased;
- U (selenocysteine) -> C and O (pyrrolysine) -> K, their closest canonical relatives;
- B (D/N), Z (E/Q) and J (I/L) are ambiguous -> X;
- alignment gaps '-' and '.' are removed (an aligned FASTA reads as its raw sequences);
- one trailing '*' (stop) is removed; a '*' anywhere else is an error;
- anything else (digits, other letters, punctuation) is an error naming the residue and its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
SUBSTITUTIONS = {"U": "C", "O": "K", "B": "X", "Z": "X", "J": "X"}
GAPS = frozenset("-.")
_NOT_A_RESIDUE = 255


class InvalidResidue(ValueError):
    """A residue the alphabet cannot represent; `position` is 1-based in the raw sequence."""

    def __init__(self, residue: str, position: int, reason: str = "invalid residue"):
        super().__init__(f"{reason} {residue!r} at position {position}")
        self.residue = residue
        self.position = position


@dataclass(frozen=True)
class Alphabet:
    residues: str = AMINO_ACIDS + "X"
    pad_token: str = "<pad>"
    mask_token: str = "<mask>"

    @property
    def tokens(self) -> list[str]:
        return [*self.residues, self.pad_token, self.mask_token]

    @property
    def size(self) -> int:
        return len(self.residues) + 2

    @property
    def n_residues(self) -> int:
        """Number of real (data) tokens: indices 0 .. n_residues - 1."""
        return len(self.residues)

    @property
    def pad_index(self) -> int:
        return len(self.residues)

    @property
    def mask_index(self) -> int:
        return len(self.residues) + 1

    def normalise(self, sequence: str) -> str:
        """Apply the documented policy; raise `InvalidResidue` for what it cannot fix."""
        text = sequence.strip().upper()
        if text.endswith("*"):
            text = text[:-1]
        out = []
        for position, residue in enumerate(text, start=1):
            if residue in GAPS:
                continue
            residue = SUBSTITUTIONS.get(residue, residue)
            if residue not in self.residues:
                if residue == "*":
                    raise InvalidResidue(residue, position, "stop codon '*' inside the sequence:")
                raise InvalidResidue(residue, position)
            out.append(residue)
        return "".join(out)

    def token_bytes(self, raw: str) -> bytes:
        """The tokens of `normalise(raw)` as bytes (empty when nothing is left), with the policy folded
        into one byte table: the common case (ASCII, residues, gaps, a final '*') is two C-level passes,
        not a Python loop per residue; anything else goes through `normalise`, which names a bad residue."""
        try:
            text = raw.encode("ascii")
        except UnicodeEncodeError:
            return self._tokens_of(self.normalise(raw))
        tokens = (text[:-1] if text.endswith(b"*") else text).translate(self._byte_tokens, b"-.")
        if _NOT_A_RESIDUE in tokens:  # whitespace at an end, a '*' inside, a digit: the slow path decides
            return self._tokens_of(self.normalise(raw))
        return tokens

    def _tokens_of(self, sequence: str) -> bytes:
        return sequence.encode("ascii").translate(self._byte_tokens)

    @cached_property
    def _byte_tokens(self) -> bytes:
        """Byte -> token of the residue it stands for after upper-casing and substitution; any other
        byte -> _NOT_A_RESIDUE."""
        table = bytearray([_NOT_A_RESIDUE]) * 256
        for letter in {*self.residues, *SUBSTITUTIONS}:
            token = self.residues.index(SUBSTITUTIONS.get(letter, letter))
            table[ord(letter)] = table[ord(letter.lower())] = token
        return bytes(table)

    def encode(self, sequence: str) -> torch.Tensor:
        """Tokens (int64) of an already normalised sequence."""
        index = {r: i for i, r in enumerate(self.residues)}
        try:
            return torch.tensor([index[r] for r in sequence], dtype=torch.long)
        except KeyError as err:
            position = next(i for i, r in enumerate(sequence, 1) if r not in index)
            raise InvalidResidue(err.args[0], position) from None

    def decode(self, tokens) -> str:
        """Residues of a token sequence; pad tokens end it, a mask token is an error."""
        out = []
        for token in (int(t) for t in tokens):
            if token == self.pad_index:
                break
            if token == self.mask_index:
                raise ValueError("cannot decode a sequence that still holds mask tokens")
            out.append(self.residues[token])
        return "".join(out)


ALPHABET = Alphabet()
