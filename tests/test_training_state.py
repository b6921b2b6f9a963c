"""TrainingState: what trainer_state.pt holds, taken back exactly, and refused when it does not fit."""

import pytest
import torch

from protein_sedd.data.batches import BatchStream
from protein_sedd.errors import UserError
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.training.checkpoint import TRAINER_STATE, load_trainer_state
from protein_sedd.training.ema import EMA
from protein_sedd.training.state import TrainingState, noise_seed

SEED = 5


def _state(rank: int = 0, hidden_size: int = 16, dropout: float = 0.0) -> TrainingState:
    torch.manual_seed(SEED)
    config = DDiTConfig(
        hidden_size=hidden_size, n_layers=1, n_heads=2, cond_dim=8, max_length=16, dropout=dropout
    )
    model = DDiT(config)
    tokens = [torch.randint(0, 20, (n,)) for n in (5, 7, 9, 6, 8, 4)]
    return TrainingState(
        model=model,
        ema=EMA(model, 0.9),
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2),
        batches=BatchStream(tokens, 2, SEED, pad_index=21),
        generator=torch.Generator().manual_seed(noise_seed(SEED, rank)),
        seed=SEED,
        rank=rank,
    )


def _train_one_step(state: TrainingState) -> None:
    state.optimizer.zero_grad(set_to_none=True)
    x0, lengths = next(state.batches)
    torch.rand(3, generator=state.generator)  # the noise a step draws
    sigma = torch.ones(x0.shape[0])
    state.model(x0, sigma, lengths).logsumexp(-1).mean().backward()
    state.optimizer.step()
    state.ema.update(state.model, state.step)
    state.step += 1


def test_a_loaded_state_continues_exactly_where_the_saved_one_stood(tmp_path):
    trained = _state()
    for _ in range(4):  # 8 of 6 sequences: into the second epoch
        _train_one_step(trained)
    saved = trained.state_dict()
    assert set(saved) == {
        "step", "model", "ema", "optimizer", "batches", "generator", "early_stopping", "dropout_rng",
    }  # fmt: skip
    assert saved["step"] == 4 and saved["batches"] == {"epoch": 1, "offset": 2}

    torch.save(saved, tmp_path / TRAINER_STATE)  # what a checkpoint holds, read back as --resume reads it
    fresh = _state()
    fresh.load_state_dict(load_trainer_state(tmp_path), tmp_path)
    assert fresh.step == 4
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], tensor), name
    for name, tensor in trained.ema.state_dict().items():
        assert torch.equal(fresh.ema.state_dict()[name], tensor), name
    assert torch.equal(fresh.generator.get_state(), trained.generator.get_state())
    # the next step is the same step: same batch, same noise, same update
    _train_one_step(trained)
    _train_one_step(fresh)
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], tensor), name


def test_only_rank_0_takes_the_saved_generator_the_others_reseed_from_the_step(tmp_path):
    trained = _state()
    for _ in range(3):
        _train_one_step(trained)
    other = _state(rank=1)
    other.load_state_dict(trained.state_dict(), tmp_path)
    assert other.step == 3 and other.batches.state_dict() == trained.batches.state_dict()
    assert other.generator.initial_seed() == SEED + 1 + 7919 * 1 + 3
    assert not torch.equal(other.generator.get_state(), trained.generator.get_state())


def test_the_early_stopping_count_is_kept_and_optional(tmp_path):
    trained = _state()
    for step, bits in ((2, 3.0), (4, 2.5), (6, 2.7)):
        trained.early_stopping.update(step, bits)
    saved = trained.state_dict()
    assert saved["early_stopping"] == {"best": 2.5, "best_step": 4, "bad_checks": 1}
    fresh = _state()
    fresh.load_state_dict(saved, tmp_path)
    assert fresh.early_stopping == trained.early_stopping
    assert not fresh.early_stopping.should_stop(2) and fresh.early_stopping.should_stop(1)
    assert not fresh.early_stopping.should_stop(0)  # patience 0: never
    older = _state()  # a checkpoint from before trainer.patience: a fresh count
    older.load_state_dict({k: v for k, v in saved.items() if k != "early_stopping"}, tmp_path)
    assert older.early_stopping.bad_checks == 0 and older.early_stopping.best == float("inf")
    bad = {**saved, "early_stopping": {"best": 2.5, "best_step": 4, "bad_checks": -1}}
    _refused(_state(), bad, tmp_path, "'early_stopping': 'bad_checks' must be a whole number >= 0")


def test_with_dropout_a_loaded_state_draws_the_same_masks_as_the_run_that_saved_it(tmp_path):
    """Dropout draws from the device's default generator, which the state saves beside the noise's."""
    trained = _state(dropout=0.5)
    for _ in range(3):
        _train_one_step(trained)
    torch.save(trained.state_dict(), tmp_path / TRAINER_STATE)
    _train_one_step(trained)  # the next step of the run that saved (one process: the generator is shared)
    fresh = _state(dropout=0.5)
    torch.manual_seed(1234)  # what a new process's start leaves there
    fresh.load_state_dict(load_trainer_state(tmp_path), tmp_path)
    _train_one_step(fresh)
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], tensor), name
    saved = torch.load(tmp_path / TRAINER_STATE, weights_only=True)
    del saved["dropout_rng"]  # a checkpoint from before the key: still loads (dropout then reseeded)
    _state(dropout=0.5).load_state_dict(saved, tmp_path)


def test_rewind_draws_the_same_batches_and_noise_again():
    state = _state()
    start = state.position()
    first = next(state.batches), torch.rand(4, generator=state.generator), torch.rand(4)
    state.rewind(start)
    again = next(state.batches), torch.rand(4, generator=state.generator), torch.rand(4)
    assert torch.equal(first[0][0], again[0][0]) and torch.equal(first[1], again[1])
    assert torch.equal(first[2], again[2])  # the dropout generator (the default one) rewinds too


def _refused(state: TrainingState, saved, checkpoint_dir, *expected: str) -> None:
    with pytest.raises(UserError) as caught:
        state.load_state_dict(saved, checkpoint_dir)
    for text in expected:
        assert text in str(caught.value), str(caught.value)


def test_a_state_that_does_not_fit_is_refused_naming_the_problem(tmp_path):
    saved = _state().state_dict()
    path = str(tmp_path / "trainer_state.pt")
    missing = {k: v for k, v in saved.items() if k != "generator"}
    _refused(_state(), missing, tmp_path, path, "malformed trainer state ('generator' missing)")
    _refused(_state(), [saved], tmp_path, path, "malformed trainer state (a list, expected a mapping)")
    _refused(_state(), {**saved, "step": -1}, tmp_path, path, "step -1 is negative")
    nan = {**saved["model"], "embedding.weight": saved["model"]["embedding.weight"] * float("nan")}
    _refused(_state(), {**saved, "model": nan}, tmp_path, "'model' weight 'embedding.weight' holds NaN")

    wider = _state(hidden_size=32)
    _refused(wider, saved, tmp_path, f"{tmp_path}: weights do not match config.yaml", "'embedding.weight'")

    trained = _state()
    _train_one_step(trained)
    moments = trained.state_dict()
    first = next(iter(moments["optimizer"]["state"].values()))
    first["exp_avg"] = first["exp_avg"].flatten()[:1]
    _refused(_state(), moments, tmp_path, path, "does not fit this run", "'exp_avg' does not match")
