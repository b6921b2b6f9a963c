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
from protein_sedd.model.config import DDiTConfig

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
    assert set(values) - {"name"} == set(_defaults(DDiTConfig)), name


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
