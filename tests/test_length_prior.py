"""LengthPrior: p(L) with its pseudo-count, draws with the training frequencies, the run config's entry."""

import math
from collections import Counter

import pytest
import torch
from omegaconf import OmegaConf

from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.model.sources import bundled_checkpoint


def test_log_prob_adds_one_pseudo_count_spread_over_the_model_lengths():
    prior = LengthPrior({3: 6, 5: 2, 40: 7}, max_length=10)  # 40 is beyond the model: left out
    log_p = prior.log_prob(torch.arange(0, 12))
    assert log_p.dtype == torch.float64
    assert torch.exp(log_p[1:11]).sum().item() == pytest.approx(1.0, abs=1e-12)
    assert log_p[0].item() == -math.inf and log_p[11].item() == -math.inf
    assert math.exp(log_p[3].item()) == pytest.approx((6 + 0.1) / 9, rel=1e-12)
    assert math.exp(log_p[5].item()) == pytest.approx((2 + 0.1) / 9, rel=1e-12)
    assert math.exp(log_p[7].item()) == pytest.approx(0.1 / 9, rel=1e-12)
    assert prior.log_prob(torch.tensor([7, 3])).tolist() == [log_p[7].item(), log_p[3].item()]


def test_log_prob_of_the_bundled_model_matches_the_formula():
    prior = LengthPrior.from_config(OmegaConf.load(bundled_checkpoint() / "config.yaml"))
    total = sum(prior.counts.values())
    for length in (1, 64, 90, prior.max_length):
        expected = math.log((prior.counts.get(length, 0) + 1 / prior.max_length) / (total + 1))
        assert prior.log_prob(torch.tensor([length])).item() == pytest.approx(expected, rel=1e-12)


def test_samples_follow_the_training_frequencies():
    counts = {3: 6, 5: 2, 9: 2, 12: 50}  # 12 is beyond the model: never drawn
    prior = LengthPrior(counts, max_length=10)
    draws = Counter(prior.sample(20_000, torch.Generator().manual_seed(0)))
    assert set(draws) == {3, 5, 9}
    expected = {3: 0.6, 5: 0.2, 9: 0.2}
    total_variation = 0.5 * sum(abs(draws[k] / 20_000 - p) for k, p in expected.items())
    assert total_variation < 0.02  # about 6 standard errors


def test_samples_are_one_multinomial_draw_over_the_usable_lengths_in_config_order():
    prior = LengthPrior({70: 3, 64: 1, 200: 9, 66: 5}, max_length=128)
    drawn = prior.sample(50, torch.Generator().manual_seed(7))
    weights = torch.tensor([3.0, 1.0, 5.0], dtype=torch.float64)
    picks = torch.multinomial(weights, 50, replacement=True, generator=torch.Generator().manual_seed(7))
    assert drawn == torch.tensor([70, 64, 66])[picks].tolist()
    assert drawn == prior.sample(50, torch.Generator().manual_seed(7))


def test_nothing_to_draw_is_a_user_error():
    with pytest.raises(UserError, match="records no training lengths"):
        LengthPrior({}, max_length=10).sample(1, torch.Generator())
    with pytest.raises(UserError, match="records no usable training lengths"):
        LengthPrior({40: 3}, max_length=10).sample(1, torch.Generator())
    with pytest.raises(UserError, match="records no usable training lengths"):
        LengthPrior({4: 0}, max_length=10).sample(1, torch.Generator())


def test_from_records_counts_lengths_in_ascending_order():
    records = [FastaRecord(i, i, s) for i, s in zip("abcd", ["MKV", "MK", "MV", "MKVLA"], strict=True)]
    prior = LengthPrior.from_records(records, max_length=8)
    assert prior == LengthPrior({2: 2, 3: 1, 5: 1}, 8)
    assert list(prior.counts) == [2, 3, 5]


def test_the_run_config_entry_round_trips():
    prior = LengthPrior({64: 11, 65: 8, 70: 1}, max_length=128)
    assert prior.to_config() == {"histogram": [[64, 11], [65, 8], [70, 1]]}
    config = OmegaConf.create({"model": {"max_length": 128}, "lengths": prior.to_config()})
    assert LengthPrior.from_config(config) == prior
    no_lengths = LengthPrior.from_config(OmegaConf.create({"model": {"max_length": 128}}))
    assert no_lengths == LengthPrior({}, 128)


def test_the_bundled_config_reads_and_writes_back_unchanged():
    config = OmegaConf.load(bundled_checkpoint() / "config.yaml")
    prior = LengthPrior.from_config(config)
    assert prior.max_length == config.model.max_length
    assert prior.to_config() == OmegaConf.to_container(config.lengths)
