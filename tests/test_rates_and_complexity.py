"""Wilson intervals and the low-complexity rule against values worked out by hand."""

import math

import pytest

from protein_sedd.evaluation.low_complexity import complexity, longest_run, min_window_entropy, repeated_kmer
from protein_sedd.evaluation.rates import rate, rates_by_length, wilson_interval


def test_wilson_interval_by_hand():
    # k=8, n=10, z=1.96: centre (0.8 + 0.19208) / 1.38416, spread 1.96 * sqrt(0.016 + 0.00096) / 1.38416
    z = 1.959963984540054
    centre, spread, denominator = 0.8 + z * z / 20, z * math.sqrt(0.016 + z * z / 400), 1 + z * z / 10
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx(((centre - spread) / denominator, (centre + spread) / denominator))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # the published table value
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_rates_overall_and_per_length_bin():
    overall = rate([True, True, False, True])
    assert overall["rate"] == 0.75 and overall["count"] == 3 and overall["n"] == 4
    assert overall["ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    bins = rates_by_length([65, 79, 80, 101, 119], [True, False, True, True, True])
    assert [(b["lengths"], b["count"], b["n"]) for b in bins] == [
        ("60-79", 1, 2),
        ("80-99", 1, 1),
        ("100-119", 2, 2),
    ]


def test_low_complexity_rule_by_hand():
    assert longest_run("MKAAAAAAL") == 6 and longest_run("MKAAAAAL") == 5
    assert min_window_entropy("AAAAAAAAAAAA") == 0.0
    assert min_window_entropy("ACDEFGHIKLMN") == pytest.approx(math.log2(12))
    assert min_window_entropy("ACACACACACAC") == pytest.approx(1.0)
    assert repeated_kmer("MKVLAGHEPPPMKVLAGHEW") == "MKVLAGHE"
    assert repeated_kmer("MKVLAGHEKVLAGHEW") == ""  # no 8-mer occurs twice
    assert repeated_kmer("AAAAAAAAA") == ""  # overlapping occurrences are not a repeat
    natural = complexity("MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE")
    assert not natural.low_complexity
    assert complexity("MKQAAAAAAAWLPEDKRTY").low_complexity  # a poly-A run
    assert complexity("MSQQNQQQQNQQNQQPEDKRTYWLV").low_complexity  # a Q/N-rich stretch
    assert complexity("MSTLKRVRFTVSGEPMSTLKRVRFTW").low_complexity  # an internal repeat
