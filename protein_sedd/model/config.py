"""The DDiT's settings (the run config's `model` section), beside the network as transformers keeps a
configuration class beside its model: torch-free, so the config checks take the types and ranges from it
(config/schema.py's `types_of` / `ranges_of`) without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from protein_sedd.config.schema import setting


@dataclass
class DDiTConfig:
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

    @classmethod
    def from_dict(cls, values: dict) -> DDiTConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)
