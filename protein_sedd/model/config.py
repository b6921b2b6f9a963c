"""The networks' settings (the run config's `model` section: the DDiT's, ESM-2's), beside the network as
transformers keeps a configuration class beside its model: torch-free, so the config checks take the types
and ranges from it (config/schema.py's `types_of` / `ranges_of`) without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from protein_sedd.config.schema import setting


class Settings:
    """A network's settings read from and written to a config's `model` section (unknown keys ignored)."""

    @classmethod
    def from_dict(cls, values: dict):
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DDiTConfig(Settings):
    vocab_size: int = setting(23)  # must be the alphabet's size (checked)
    max_length: int = setting(128, 1, 16_384)
    hidden_size: int = setting(128, 1, 65_536)
    n_layers: int = setting(4, 1, 1_024)
    n_heads: int = setting(4, 1, 1_024)
    cond_dim: int = setting(64, 1, 65_536)
    mlp_ratio: int = setting(4, 1, 64)
    dropout: float = setting(0.0)
    time_conditioning: bool = setting(False)
    causal: bool = setting(False)  # True only for the autoregressive baseline
    # Rotary attention alone cannot tell positions apart in a fully masked sequence (every position
    # sees identical keys), so the first unmasking step would draw all residues from one pooled
    # distribution. Learned embeddings of the distance to both ends give each position its place,
    # as start/end tokens do in earlier SEDD protein models.
    end_embeddings: bool = setting(True)


@dataclass
class Esm2Config(Settings):
    """The run config's `model` section for `model=esm2` (configs/model/esm2.yaml)."""

    kind: str = setting("esm2")
    name: str = setting("esm2")
    pretrained: str = setting("facebook/esm2_t6_8M_UR50D")
    revision: str = setting("main")
    vocab_size: int = setting(23)
    max_length: int = setting(1022, 1, 16_384)  # ESM-2's 1,026 positions less <cls> and <eos>
    lora_rank: int = setting(0, 0, 1_024)  # 0: full fine-tuning
    lora_alpha: float = setting(16.0)
    lora_dropout: float = setting(0.0)
    time_conditioning: bool = setting(False)
    causal: bool = setting(False)
    esm: dict = field(default_factory=dict)  # ESM's EsmConfig, recorded when a run starts
    token_ids: dict = field(default_factory=dict)  # ESM's id of each project token and of <cls>, <eos>
