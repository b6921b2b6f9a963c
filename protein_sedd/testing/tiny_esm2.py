"""A tiny random-init ESM-2 (transformers' EsmForMaskedLM) saved as a real checkpoint folder, for running
every ESM-2 path without the weights (they cannot be downloaded here): ESM-2's vocabulary and token
layout, two layers, hidden size 32."""

from __future__ import annotations

from pathlib import Path


def build_tiny_esm2(
    path: Path, seed: int = 0, max_positions: int = 258, hidden_size: int = 32, layers: int = 2
) -> Path:
    """`path` holding config.json, model.safetensors and vocab.txt of a random ESM-2; returns `path`."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM
    from transformers.models.esm.configuration_esm import get_default_vocab_list
    from transformers.utils import logging as hf_logging

    vocabulary = list(get_default_vocab_list())
    config = EsmConfig(
        vocab_size=len(vocabulary), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=4, intermediate_size=2 * hidden_size, max_position_embeddings=max_positions,
        position_embedding_type="rotary",
        pad_token_id=vocabulary.index("<pad>"), mask_token_id=vocabulary.index("<mask>"), token_dropout=True,
        emb_layer_norm_before=False, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = EsmForMaskedLM(config)
    path.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # no stray "Writing model shards" bar
    model.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(vocabulary) + "\n")
    return path
