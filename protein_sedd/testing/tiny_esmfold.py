"""A toy-size, random-init ESMFold saved like a downloaded checkpoint.

Real ESMFold weights (facebook/esmfold_v1, ~8 GB) are not always at hand: tests and the smoke workflow
fold with this model to run the whole fold-eval path. Its pLDDT values mean nothing, so its config.json
carries a `TOY_KEY` flag and fold-eval labels every report of it as a plumbing check.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

TOY_KEY = "protein_sedd_toy"
PLUMBING_NOTE = "plumbing check: toy random-weight ESMFold, pLDDT meaningless"


def is_toy_esmfold(model: str | Path) -> bool:
    """Whether `model` is a folder saved by `build_tiny_esmfold` (a hub id or .pt file never is)."""
    try:
        return bool(json.loads((Path(model).expanduser() / "config.json").read_text()).get(TOY_KEY))
    except (OSError, ValueError, AttributeError):
        return False


def build_tiny_esmfold(path: Path, seed: int = 0) -> Path:
    from transformers import EsmConfig, EsmForProteinFolding
    from transformers.models.esm.configuration_esm import get_default_vocab_list
    from transformers.utils import logging as hf_logging

    structure_module = dict(
        sequence_dim=32, pairwise_dim=16, ipa_dim=8, resnet_dim=16, num_heads_ipa=2, num_qk_points=2,
        num_v_points=2, num_blocks=1, num_resnet_blocks=1,
    )  # fmt: skip
    trunk = dict(
        num_blocks=1, sequence_state_dim=32, pairwise_state_dim=16, sequence_head_width=16,
        pairwise_head_width=8, max_recycles=1, chunk_size=None, structure_module=structure_module,
    )  # fmt: skip
    config = EsmConfig(
        vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=1026, position_embedding_type="rotary", pad_token_id=1, mask_token_id=32,
        token_dropout=True, emb_layer_norm_before=False, is_folding_model=True,
        vocab_list=list(get_default_vocab_list()),
        esmfold_config=dict(fp16_esm=True, lddt_head_hid_dim=16, trunk=trunk), **{TOY_KEY: True},
    )  # fmt: skip
    torch.manual_seed(seed)
    model = EsmForProteinFolding(config).eval()
    with (
        torch.no_grad()
    ):  # random init predicts pLDDT ~0.5 everywhere: widen it so residues and designs differ
        for layer in model.lddt_head:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(30.0)
    hf_logging.disable_progress_bar()  # no stray "Writing model shards" bar in the workflow's console
    model.save_pretrained(path)
    return path
