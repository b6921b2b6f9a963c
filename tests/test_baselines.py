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


# -- the Potts (EVmutation) baseline ------------------------------------------------------------------------
def _codes(rows: list[str]):
    import numpy as np

    from protein_sedd.data.alphabet import AMINO_ACIDS

    index = {a: i for i, a in enumerate(AMINO_ACIDS)}
    return np.array([[index.get(c, 21) for c in row] for row in rows], dtype=np.uint8)  # '-' -> gap code


def test_a_potts_model_of_one_column_learns_its_log_frequencies():
    """One column has no couplings: the pseudo-likelihood is its softmax likelihood, whose optimum is the
    log frequency up to a constant (lambda_h = 0.01 shrinks it a hair)."""
    import numpy as np

    from protein_sedd.baselines.potts import fit_potts

    rng = np.random.default_rng(0)
    residues = np.array(list("ACDE"))
    probabilities = [[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]]
    rows = ["".join(rng.choice(residues, p=p) for p in probabilities) for _ in range(400)]
    for column in range(3):
        potts = fit_potts(_codes([r[column] for r in rows]))
        assert not potts.couplings.any()  # a column is not coupled to itself
        counts = np.array([sum(r[column] == a for r in rows) for a in "ACDE"])
        expected = np.log(counts / counts[0])
        fields = potts.fields[0, :4] - potts.fields[0, 0]
        assert np.allclose(fields, expected, atol=0.01), (fields, expected)


def test_the_potts_model_sees_a_compensating_double_mutant_the_site_independent_cannot():
    """Column 2 holds column 1's partner (A-D, C-E; 4% noise): breaking the pair costs several nats, swapping
    both partners keeps it; the site-independent model scores the swap as the sum of two singles."""
    import numpy as np

    from protein_sedd.baselines.potts import fit_potts, potts_scores, potts_symbols
    from protein_sedd.baselines.site_independent import alignment_log_frequencies, site_independent_scores
    from protein_sedd.evaluation.variants import parse_mutant

    rng = np.random.default_rng(1)
    partner = {"A": "D", "C": "E"}
    rows = []
    for _ in range(600):
        lead = rng.choice(["A", "C"])
        follow = partner[lead] if rng.random() > 0.04 else rng.choice(list("DE"))
        rows.append(lead + follow + "".join(rng.choice(list("KLMN"), 2)))
    columns = _codes(rows)
    potts = fit_potts(columns)
    wildtype = "ADKL"
    variants = [parse_mutant(m, wildtype) for m in ["A1C", "D2E", "A1C:D2E", "K3M"]]
    scores = potts_scores(potts, potts_symbols(_codes([wildtype])[0]), range(4), variants)
    single_a, single_d, swap, neutral = scores
    assert swap > single_a + 2 and swap > single_d + 2 and abs(swap) < 1  # the pair is kept
    profile = alignment_log_frequencies(columns, range(4), 4)
    independent = site_independent_scores(profile, variants)
    assert abs(independent[2] - (independent[0] + independent[1])) < 1e-9  # no pair term
    # E(mutant) - E(wild type) by hand from the fitted fields and couplings
    x, y = potts_symbols(_codes(["ADKL"])[0]), potts_symbols(_codes(["CEKL"])[0])

    def energy(s):
        pair = sum(potts.couplings[i, s[i], j, s[j]] for i in range(4) for j in range(i + 1, 4))
        return sum(potts.fields[i, s[i]] for i in range(4)) + pair

    assert swap == pytest.approx(energy(y) - energy(x), rel=1e-9)
    assert potts.report["lambda_J"] == pytest.approx(0.01 * 20 * 3) and potts.report["rows"] == 600


def test_potts_scores_leave_variants_outside_the_focus_columns_empty():
    import numpy as np

    from protein_sedd.baselines.potts import fit_potts, potts_scores, potts_symbols
    from protein_sedd.evaluation.variants import parse_mutant

    rows = ["ADK", "ADL", "CEK", "CEL"] * 20
    potts = fit_potts(_codes(rows))
    wildtype = "MADK"  # residue 1 has no column: columns are residues 2-4
    variants = [parse_mutant(m, wildtype) for m in ["M1A", "A2C", "M1A:A2C"]]
    scores = potts_scores(potts, potts_symbols(_codes(["ADK"])[0]), [1, 2, 3], variants)
    assert np.isnan(scores[0]) and np.isnan(scores[2]) and np.isfinite(scores[1])


def test_potts_changes_from_local_fields_equal_the_difference_of_energies():
    """The wild type's local fields plus the pair correction inside the changed columns give exactly
    E(mutant) - E(wild type), for singles, doubles and triples (adjacent and not)."""
    import numpy as np

    from protein_sedd.baselines.potts import Potts, Q

    rng = np.random.default_rng(3)
    length = 6
    raw = rng.normal(size=(length, Q, length, Q))
    couplings = 0.5 * (raw + raw.transpose(2, 3, 0, 1))
    couplings[np.arange(length), :, np.arange(length), :] = 0
    potts = Potts(rng.normal(size=(length, Q)), couplings, {})
    wildtype = rng.integers(0, Q, length)
    # E(x) by the definition: fields plus each pair i < j once
    brute = sum(potts.fields[i, wildtype[i]] for i in range(length)) + sum(
        couplings[i, wildtype[i], j, wildtype[j]] for i in range(length) for j in range(i + 1, length)
    )
    assert potts.energies(wildtype[None])[0] == pytest.approx(brute, rel=1e-12)
    mutants = [[(2, 5)], [(0, 1), (1, 7)], [(1, 3), (4, 20), (5, 0)], [(3, int(wildtype[3]))]]
    rows = []
    for changes in mutants:
        row = wildtype.copy()
        for column, symbol in changes:
            row[column] = symbol
        rows.append(row)
    expected = potts.energies(np.stack(rows)) - potts.energies(wildtype[None])[0]
    assert np.allclose(potts.changes(wildtype, mutants), expected, rtol=0, atol=1e-10)
    assert potts.changes(wildtype, mutants)[3] == 0.0


def test_the_pseudo_likelihood_gradient_by_hand_is_autograds():
    """PseudoLikelihood's objective and hand-written gradient against autograd of the textbook formula
    (weighted rows, symmetric couplings with zero diagonal blocks, both penalties) at a random point."""
    from protein_sedd.baselines.potts import PseudoLikelihood, Q

    torch.manual_seed(0)
    n, length, lambda_h, scale_j = 7, 4, 0.01, 0.6
    symbols, weights = torch.randint(0, Q, (n, length)), torch.rand(n)
    objective = PseudoLikelihood(symbols, weights, lambda_h, scale_j)
    size = length * Q
    raw = torch.randn(size, size, dtype=torch.float64)
    mask = (1 - torch.eye(length, dtype=torch.float64))[:, None, :, None].expand(length, Q, length, Q)
    mask = mask.reshape(size, size)
    h = (0.3 * torch.randn(size, dtype=torch.float64)).requires_grad_()
    J = (0.15 * (raw + raw.T) * mask).requires_grad_()
    onehot = torch.nn.functional.one_hot(symbols, Q).double().reshape(n, size)
    logits = (h + onehot @ J).reshape(n, length, Q)
    picked = torch.log_softmax(logits, -1).gather(-1, symbols[..., None]).squeeze(-1)
    pairs = sum(
        (J.view(length, Q, length, Q)[i, :, j, :] ** 2).sum() for i in range(length) for j in range(i)
    )
    expected = -(weights.double() * picked.sum(-1)).sum() + lambda_h * (h**2).sum() + scale_j * pairs
    expected.backward()
    flat = torch.cat([h.detach(), J.detach().reshape(-1)]).float()
    gradient = torch.zeros_like(flat)
    assert objective(flat, gradient) == pytest.approx(float(expected.detach()), rel=1e-5)
    # no gradient asked: the same value
    assert objective(flat) == pytest.approx(float(expected.detach()), rel=1e-5)
    # J_ij and J_ji^T are one parameter: the gradient along symmetric, masked J is autograd's gradient over
    # the free matrix, symmetrised and masked
    torch.testing.assert_close(gradient[:size].double(), h.grad, atol=1e-5, rtol=1e-4)
    along = 0.5 * (J.grad + J.grad.T) * mask
    torch.testing.assert_close(gradient[size:].view(size, size).double(), along, atol=1e-5, rtol=1e-4)
