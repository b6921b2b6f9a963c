import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET, AMINO_ACIDS, InvalidResidue


def test_layout_puts_residues_first_then_pad_then_mask_last():
    assert ALPHABET.tokens[:21] == list(AMINO_ACIDS + "X")
    assert ALPHABET.size == 23
    assert ALPHABET.n_residues == 21
    assert ALPHABET.pad_index == 21 and ALPHABET.tokens[21] == "<pad>"
    assert ALPHABET.mask_index == 22 == ALPHABET.size - 1 and ALPHABET.tokens[-1] == "<mask>"


def test_encode_decode_round_trip_every_residue():
    sequence = AMINO_ACIDS + "X" + AMINO_ACIDS[::-1]
    tokens = ALPHABET.encode(sequence)
    assert tokens.dtype == torch.long
    assert tokens[:21].tolist() == list(range(21))
    assert ALPHABET.decode(tokens) == sequence


def test_decode_stops_at_padding_and_refuses_masks():
    tokens = torch.tensor([10, 0, ALPHABET.pad_index, 3])
    assert ALPHABET.decode(tokens) == "MA"
    with pytest.raises(ValueError, match="mask"):
        ALPHABET.decode(torch.tensor([0, ALPHABET.mask_index]))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("mkvl", "MKVL"),  # lower case
        ("MKU", "MKC"),  # selenocysteine -> C
        ("MKO", "MKK"),  # pyrrolysine -> K
        ("BZJ", "XXX"),  # ambiguous codes -> X
        ("MK-V.L", "MKVL"),  # alignment gaps removed
        ("MKVL*", "MKVL"),  # trailing stop removed
        ("  MKVL \n", "MKVL"),
    ],
)
def test_normalisation_policy(raw, expected):
    assert ALPHABET.normalise(raw) == expected


@pytest.mark.parametrize(
    "raw, residue, position, words",
    [
        ("MKV1L", "1", 4, "invalid residue"),
        ("MK*VL", "*", 3, "stop codon"),
        ("MK VL", " ", 3, "invalid residue"),
        ("MK#", "#", 3, "invalid residue"),
    ],
)
def test_invalid_residues_are_named_with_their_position(raw, residue, position, words):
    with pytest.raises(InvalidResidue) as info:
        ALPHABET.normalise(raw)
    assert info.value.residue == residue
    assert info.value.position == position
    assert words in str(info.value) and f"position {position}" in str(info.value)
