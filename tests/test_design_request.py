"""DesignRequest: the user's options about what to design -> start rows and the FASTA header note."""

import pytest
import torch

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.design.request import DesignRequest
from protein_sedd.errors import UserError

MASK = ALPHABET.mask_index
PRIOR = LengthPrior({5: 3, 7: 1}, max_length=10)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"length": 3, "length_range": "2:4"}, "give one of length or length_range, not both"),
        ({"template": "M_K", "length": 3}, "length/length_range conflict with template/fix"),
        ({"template": "M_K", "fix": "a.fa", "redesign": "1"}, "give one of template or fix/redesign"),
        ({"fix": "a.fa"}, "fix needs redesign RANGES"),
        ({"redesign": "2-3"}, "redesign needs fix SEQ.fasta"),
        ({"lengths": [3, 4]}, "lengths: 2 given for n=4 designs"),
        ({"lengths": [3, 4, 5, 6.5]}, "lengths: every length must be a whole number"),
        ({"length": 3.0}, "length 3.0: must be a whole number"),
        ({"template": 7}, "template: expected a string, got int"),
    ],
)
def test_conflicting_options_are_refused_before_anything_is_read(options, words):
    """Messages name the Python parameters (the command names its flags: test_errors_speak_the_callers...)."""
    with pytest.raises(UserError) as error:
        DesignRequest(4, **options)
    assert str(error.value).startswith(words) or words in str(error.value), str(error.value)
    assert "--" not in str(error.value)
    assert error.value.field in options


def test_default_lengths_are_drawn_from_the_prior_with_the_seed():
    starts = DesignRequest(6).starts(PRIOR, seed=3)
    expected = PRIOR.sample(6, torch.Generator().manual_seed(3))
    assert [len(row) for row in starts.rows] == expected
    assert all(bool((row == MASK).all()) for row in starts.rows) and starts.note == ""


def test_one_length_or_a_range():
    starts = DesignRequest(3, length=4).starts(PRIOR, seed=0)
    assert [row.tolist() for row in starts.rows] == [[MASK] * 4] * 3
    drawn = [len(row) for row in DesignRequest(200, length_range="2:4").starts(PRIOR, seed=1).rows]
    assert set(drawn) == {2, 3, 4}
    assert drawn == torch.randint(2, 5, (200,), generator=torch.Generator().manual_seed(1)).tolist()


def test_lengths_are_checked_against_the_model():
    with pytest.raises(UserError, match="^length 11: length 11 exceeds the model's maximum length 10$"):
        DesignRequest(1, length=11).starts(PRIOR, seed=0)
    with pytest.raises(UserError, match="^length_range 2:11: length 11 exceeds"):
        DesignRequest(1, length_range="2:11").starts(PRIOR, seed=0)
    with pytest.raises(UserError, match="^template: length 11 exceeds"):
        DesignRequest(1, template="M_KVLAGHEMK").starts(PRIOR, seed=0)


def test_a_template_gives_the_same_row_n_times():
    starts = DesignRequest(3, template="mk__aG_e").starts(PRIOR, seed=0)
    expected = ALPHABET.encode("MKAAAGAE")
    expected[[2, 3, 6]] = MASK
    assert [row.tolist() for row in starts.rows] == [expected.tolist()] * 3
    assert starts.note == " designed=3"


def test_fix_and_redesign_mask_the_ranges_and_read_the_file_once(tmp_path):
    source = tmp_path / "source.fa"
    source.write_text(">wt\nWWWWWWWW\n")
    request = DesignRequest(2, fix=source, redesign="2-3,6")
    source.unlink()  # starts() uses what the request read when it was made
    starts = request.starts(PRIOR, seed=0)
    W = ALPHABET.residues.index("W")
    assert [row.tolist() for row in starts.rows] == [[W, MASK, MASK, W, W, MASK, W, W]] * 2
    assert starts.note == " source=wt redesign=2-3,6-6 designed=3"
