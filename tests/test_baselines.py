"""The autoregressive and unigram baselines: exact likelihoods."""

import itertools
import json
import math

import pytest
import torch

from protein_sedd.baselines.autoregressive import dataset_nll, sequence_nll
from protein_sedd.baselines.unigram import unigram_log_probs, unigram_nll
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.model import DDiT, DDiTConfig

from .conftest import SYNTHETIC_ENTROPY, SYNTHETIC_TRAIN_ARGS, run_cli, write_synthetic_fasta


def _random_causal_model():
    torch.manual_seed(0)
    model = DDiT(DDiTConfig(causal=True, hidden_size=32, n_heads=2, n_layers=2, cond_dim=16, max_length=8))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN" in name or "final.linear" in name:
                p.normal_(0, 0.3)
    return model.eval()


def test_autoregressive_probabilities_sum_to_one_over_all_sequences():
    model = _random_causal_model()
    every = torch.tensor(list(itertools.product(range(ALPHABET.n_residues), repeat=2)))
    with torch.no_grad():
        nll = sequence_nll(
            model, every, torch.full((len(every),), 2), ALPHABET.mask_index, ALPHABET.pad_index
        )
    assert torch.exp(-nll.double()).sum().item() == pytest.approx(1.0, abs=1e-5)
    assert nll.std() > 0.01  # not trivially uniform


def test_padding_does_not_change_the_autoregressive_likelihood():
    model = _random_causal_model()
    tokens = [torch.tensor([3, 5, 7]), torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([9])]
    together = dataset_nll(
        model, tokens, batch_size=3, start_index=ALPHABET.mask_index, pad_index=ALPHABET.pad_index
    )
    alone = [
        dataset_nll(model, [t], batch_size=1, start_index=ALPHABET.mask_index, pad_index=ALPHABET.pad_index)[
            0
        ]
        for t in tokens
    ]
    torch.testing.assert_close(together, torch.stack(alone), atol=1e-5, rtol=1e-5)


def test_unigram():
    log_probs = unigram_log_probs(["AAC", "AC"], pseudo_count=1.0)
    total = 3 + 2 + 21
    assert math.exp(log_probs["A"]) == pytest.approx(4 / total)
    assert math.exp(log_probs["W"]) == pytest.approx(1 / total)
    assert sum(math.exp(v) for v in log_probs.values()) == pytest.approx(1.0)
    assert unigram_nll("AW", log_probs) == pytest.approx(-math.log(4 / total) - math.log(1 / total))


@pytest.mark.slow
def test_autoregressive_baseline_reaches_the_known_entropy(tmp_path, capsys):
    fasta = write_synthetic_fasta(tmp_path / "s.fa")
    run = tmp_path / "ar"
    args = ["train", "--fasta", fasta, "--out", run, "--max-steps", "250", "--device", "cpu", "model=ar"]
    assert run_cli(args + SYNTHETIC_TRAIN_ARGS)[0] == 0
    out = tmp_path / "ar.json"
    code, _, err = run_cli(["evaluate", "--checkpoint", run, "--split", "test", "--json", out], capsys)
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["exact"] is True
    # an exact NLL on 400 held-out draws: within sampling error of the entropy
    assert report["nats_per_sequence"] == pytest.approx(SYNTHETIC_ENTROPY, rel=0.10)
