"""One schema (config/schema.py, model/config.py): the config checks take their types and ranges from the
settings dataclasses, and the YAML groups hold exactly the keys those declare, with the same defaults."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from protein_sedd.config import checks
from protein_sedd.config.compose import compose_config
from protein_sedd.config.schema import DataSettings, TrainerSettings, ranges_of, types_of
from protein_sedd.errors import UserError
from protein_sedd.model.config import DDiTConfig, Esm2Config
from protein_sedd.model.networks import NETWORKS

from .conftest import REPO

CONFIGS = REPO / "configs"


def _defaults(schema) -> dict:
    return dataclasses.asdict(schema())


def test_the_checks_take_types_and_ranges_from_the_schema():
    assert checks.MODEL_TYPES == types_of(DDiTConfig) and checks.MODEL_RANGES == ranges_of(DDiTConfig)
    assert checks.TRAINER_TYPES == types_of(TrainerSettings)
    assert checks.TRAINER_INT_RANGES == ranges_of(TrainerSettings)
    assert types_of(TrainerSettings)["betas"] is list and types_of(DDiTConfig)["dropout"] is float
    assert ranges_of(DDiTConfig)["max_length"] == (1, 16_384) and "dropout" not in ranges_of(DDiTConfig)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
def test_every_model_group_has_exactly_the_networks_keys(name):
    values = yaml.safe_load((CONFIGS / "model" / f"{name}.yaml").read_text())
    schema = NETWORKS[values.get("kind", "ddit")].config  # the network kind's settings (model/networks.py)
    assert set(values) - {"name"} == set(_defaults(schema)) - {"name"}, name
    if schema is Esm2Config:  # its group is the schema's defaults (what a run records is filled in later)
        assert values == _defaults(Esm2Config)


def test_the_default_trainer_and_tiny_model_are_the_schemas_defaults():
    assert yaml.safe_load((CONFIGS / "trainer" / "default.yaml").read_text()) == _defaults(TrainerSettings)
    tiny = yaml.safe_load((CONFIGS / "model" / "tiny.yaml").read_text())
    assert {k: v for k, v in tiny.items() if k != "name"} == _defaults(DDiTConfig)
    for name in ("acyp", "fasta"):
        data = yaml.safe_load((CONFIGS / "data" / f"{name}.yaml").read_text())
        assert set(_defaults(DataSettings)) <= set(data), name


def test_a_new_bound_in_the_schema_is_enforced(monkeypatch):
    cfg = compose_config(["data=fasta", "data.fasta=x.fa", "trainer.val_t_samples=3"])
    checks.validate_config(cfg)
    monkeypatch.setitem(checks.TRAINER_INT_RANGES, "val_t_samples", (1, 2))  # as a field's range would
    with pytest.raises(UserError, match=r"trainer.val_t_samples=3"):
        checks.validate_config(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "+trainer.btach_size=3",
            "the config has no key trainer.btach_size (did you mean trainer.batch_size?)",
        ),
        ("+model.extra=1", "the config has no key model.extra (the model keys are name, vocab_size,"),
        ("+sead=1", "the config has no key sead (did you mean seed?)"),
        ("+trainer.x.y=1", "the config has no key trainer.x.y (no such section)"),
    ],
)
def test_an_added_key_the_config_lacks_is_refused_as_a_typo(override, message):
    # Hydra answers a mistyped key with "use +key=value"; that would train with the default and store the typo
    with pytest.raises(UserError) as caught:
        compose_config(["trainer.lr=1e-4", override])
    assert str(caught.value).startswith(f"config override {override!r}: {message}")


def test_an_added_key_may_not_come_through_the_command_line_either(tmp_path, capsys):
    from .conftest import run_cli, write_synthetic_fasta

    fasta, out = write_synthetic_fasta(tmp_path / "s.fa", n=20), tmp_path / "run"
    code, _, err = run_cli(
        ["train", "--fasta", fasta, "--out", out, "trainer.max_steps=2", "+trainer.btach_size=3"], capsys
    )
    assert code == 2 and not out.exists()
    assert err.strip() == (
        "error: config override '+trainer.btach_size=3': the config has no key trainer.btach_size "
        "(did you mean trainer.batch_size?)"
    )


def test_an_added_key_is_still_refused_when_the_config_has_it():
    with pytest.raises(UserError, match="bad config override"):
        compose_config(["+trainer.batch_size=3"])  # Hydra's own refusal: the key is there, set it plainly
