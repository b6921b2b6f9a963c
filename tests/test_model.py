import pytest
import torch
from omegaconf import OmegaConf

from protein_sedd.config.compose import config_dir
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.model.rotary import Rotary, apply_rotary


def _config(name):
    return DDiTConfig.from_dict(
        OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / f"{name}.yaml"))
    )


@pytest.mark.parametrize(
    "name, low, high",
    [("family", 0.15e6, 0.3e6), ("tiny", 0.8e6, 1.3e6), ("small", 6e6, 10e6), ("medium", 25e6, 40e6)],
)
def test_model_sizes(name, low, high):
    assert low <= DDiT(_config(name)).num_parameters() <= high


def _randomised(config: DDiTConfig) -> DDiT:
    """A model with the zero-initialised layers made non-zero, so every path is exercised."""
    torch.manual_seed(0)
    model = DDiT(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "adaLN" in name or "final.linear" in name:
                p.normal_(0, 0.1)
    return model.eval()


def test_zero_initialisation_gives_zero_logits():
    model = DDiT(DDiTConfig())
    logits = model(torch.randint(0, 21, (2, 10)), torch.rand(2))
    assert logits.shape == (2, 10, 23)
    assert torch.count_nonzero(logits) == 0
    assert all(torch.count_nonzero(b.adaLN.weight) == 0 for b in model.blocks)


@pytest.mark.parametrize("time_conditioning", [False, True])
def test_padding_never_changes_real_positions(time_conditioning):
    model = _randomised(DDiTConfig(time_conditioning=time_conditioning, max_length=32))
    short = torch.randint(0, 21, (1, 7))
    long = torch.randint(0, 21, (1, 12))
    batch = torch.full((2, 12), 21)
    batch[0, :7], batch[1] = short[0], long[0]
    sigma = torch.tensor([0.7, 0.7])
    together = model(batch, sigma, torch.tensor([7, 12]))
    alone = model(short, sigma[:1], torch.tensor([7]))
    torch.testing.assert_close(together[0, :7], alone[0], atol=1e-5, rtol=1e-5)
    # whatever sits in the padding does not matter either
    batch[0, 7:] = torch.randint(0, 23, (5,))
    torch.testing.assert_close(
        model(batch, sigma, torch.tensor([7, 12]))[0, :7], alone[0], atol=1e-5, rtol=1e-5
    )


def test_time_conditioning_switch():
    tokens = torch.randint(0, 21, (1, 9))
    free = _randomised(DDiTConfig(time_conditioning=False))
    torch.testing.assert_close(free(tokens, torch.tensor([0.1])), free(tokens, torch.tensor([5.0])))
    conditioned = _randomised(DDiTConfig(time_conditioning=True))
    assert not torch.allclose(
        conditioned(tokens, torch.tensor([0.1])), conditioned(tokens, torch.tensor([5.0]))
    )


@pytest.mark.parametrize("causal", [False, True])
def test_attention_direction(causal):
    model = _randomised(DDiTConfig(causal=causal))
    tokens = torch.randint(0, 21, (1, 10))
    changed = tokens.clone()
    changed[0, 9] = (changed[0, 9] + 1) % 21
    sigma = torch.tensor([1.0])
    earlier_moves = not torch.allclose(model(tokens, sigma)[0, :9], model(changed, sigma)[0, :9])
    assert earlier_moves is (not causal)


def test_fully_masked_positions_are_told_apart():
    # rotary alone would give every position of an all-mask input the same output
    model = _randomised(DDiTConfig(end_embeddings=True))
    logits = model(torch.full((1, 8), 22), torch.tensor([3.0]))
    assert not torch.allclose(logits[0, 0], logits[0, 3])
    plain = _randomised(DDiTConfig(end_embeddings=False))
    logits = plain(torch.full((1, 8), 22), torch.tensor([3.0]))
    torch.testing.assert_close(logits[0, 0], logits[0, 3])


def test_rotary_scores_depend_on_relative_position_only():
    rotary = Rotary(16)
    cos, sin = rotary.cos_sin(20, torch.device("cpu"))
    q, k = torch.randn(16), torch.randn(16)
    x = torch.stack([q, k] * 10)[None, :, None, :].expand(1, 20, 1, 16).clone()
    x[0, :, 0] = torch.stack([q if i % 2 == 0 else k for i in range(20)])
    rotated = apply_rotary(x, cos, sin)[0, :, 0]
    assert torch.allclose(rotated[2] @ rotated[5], rotated[10] @ rotated[13], atol=1e-4)


def test_context_length_is_enforced():
    model = DDiT(DDiTConfig(max_length=8))
    with pytest.raises(ValueError, match="exceeds the model context 8"):
        model(torch.zeros(1, 9, dtype=torch.long), torch.zeros(1))


def test_training_after_sampling_the_same_model():
    # sampling runs under inference_mode; the rotary tables it caches must not reach autograd
    from protein_sedd.data.alphabet import ALPHABET
    from protein_sedd.design.request import masked_starts
    from protein_sedd.diffusion.graph import build_graph
    from protein_sedd.diffusion.noise import LogLinearNoise
    from protein_sedd.diffusion.sampling import sample

    model = _randomised(DDiTConfig(max_length=16))
    graph = build_graph("absorbing", ALPHABET)
    designed = sample(model, graph, LogLinearNoise(), masked_starts([12, 12]), steps=4, seed=0)
    assert [len(s) for s in designed.sequences] == [12, 12]

    model.train()
    tokens = torch.randint(0, 21, (2, 12))
    loss = model(tokens, torch.rand(2)).logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.blocks[0].parameters())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("time_conditioning", [False, True])
def test_logits_at_some_positions_equal_the_whole_forward_there(causal, time_conditioning):
    config = _config("tiny")
    config.causal, config.time_conditioning = causal, time_conditioning
    model = _randomised(config)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 23, (5, 40), generator=generator)
    sigma, lengths = torch.rand(5, generator=generator), torch.tensor([40, 33, 20, 40, 7])
    rows = torch.tensor([0, 0, 1, 2, 3, 4, 4])  # several positions in a row, one row left out
    cols = torch.tensor([0, 39, 32, 5, 17, 0, 6])  # first and last real positions
    with torch.no_grad():
        whole = model(tokens, sigma, lengths)[rows, cols]
        some = model.logits_at(tokens, sigma, lengths, rows, cols)
        unpadded = model.logits_at(tokens[:1], sigma[:1], None, torch.tensor([0, 0]), torch.tensor([3, 39]))
    assert some.shape == (7, 23) and some.dtype == torch.float32
    torch.testing.assert_close(some, whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(unpadded, model(tokens[:1], sigma[:1])[0, [3, 39]], rtol=1e-5, atol=1e-5)
    assert float(whole.abs().max()) > 0.1  # not a zero network


def test_tanh_gelu_is_torchs_approximation_and_erf_gelu_in_bf16():
    from protein_sedd.model.ddit import TanhGELU

    gelu, x = TanhGELU(), torch.linspace(-10, 10, 20001)
    reference = torch.nn.functional.gelu(x, approximate="tanh")
    with torch.no_grad():
        torch.testing.assert_close(gelu(x), reference, rtol=0, atol=1e-6)
        bf16 = gelu(x.bfloat16())
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16, torch.nn.functional.gelu(x.bfloat16()), rtol=0, atol=0)
    assert float((bf16.float() - reference).abs().max()) < 0.07  # bf16 rounding at |x| = 10
    trained = x.clone().requires_grad_()
    gelu(trained).sum().backward()  # training takes torch's kernel, and its gradient
    expected = x.clone().requires_grad_()
    torch.nn.functional.gelu(expected, approximate="tanh").sum().backward()
    torch.testing.assert_close(trained.grad, expected.grad, rtol=0, atol=0)
