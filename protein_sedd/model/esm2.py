"""ESM-2 as the score network: a masked protein language model is a time-independent absorbing-state
diffusion model, so it plugs in where the DDiT does.

Why it is one. Under the absorbing graph every real token is masked independently with probability
1 - e^(-sigma_bar), and a mask never leaves. At a masked position i of x_t, the concrete score (the ratio the
reverse process needs) for unmasking it to residue y is

    p_t(x_t with y at i) / p_t(x_t)
        = p_0(x^i = y | x_t's unmasked positions) * e^(-sigma_bar) / (1 - e^(-sigma_bar))
        = p_0(y | unmasked) / expm1(sigma_bar),

because which positions are masked does not depend on the clean residues: the ratio splits into the clean
conditional at i given what is visible, times the odds of "still unmasked" against "masked". The noise level
enters only through expm1(sigma_bar), so a network that predicts p_0(y | unmasked), without knowing t,
carries the whole score. That is exactly what a masked language model's head predicts (DPLM's observation).
`AbsorbingGraph.log_score` takes log_softmax of the logits over the 21 real tokens and subtracts
log expm1(sigma_bar): `model.time_conditioning` is false for ESM-2, as for the time-independent DDiT, and the
analytic predictor, the clean-sequence cache, the event sampler, masked-marginal variant scores and the
likelihood bound all apply unchanged. Score-entropy training of this parametrisation is a masked-LM cross
entropy weighted by 1/expm1(sigma_bar) per masked position (the sum of exp(log score + shift) is 1).

Tokens. The project's alphabet (20 residues, X, pad, mask) maps one to one onto ESM's tokens; a sequence goes
in as `<cls> residues <eos>` followed by `<pad>`s, as ESM-2 was trained (its attention uses the two end
tokens; leaving them out degrades every prediction), and the logits at the residue positions are read back
over the 21 real tokens. ESM's other tokens (`<unk>`, B, U, Z, O, '.', '-', `<null_1>`, and `<cls>`/`<eos>`
themselves) are never fed and their logits are dropped, so the model's distribution is the renormalised
one over the project's residues. The project's mask is ESM's `<mask>`: the model has seen it at every
masked position during its own pretraining.

Weights. `model.pretrained` names a local folder or a Hub id (`facebook/esm2_t6_8M_UR50D` ...
`facebook/esm2_t33_650M_UR50D`, through huggingface_hub's cache); only a new run reads it, and it records
ESM's architecture (`model.esm`) and token ids in the run's config, so a checkpoint or saved folder loads
with no access to the original weights. `model.lora_rank > 0` trains LoRA adapters (peft) on the attention
projections and keeps the rest frozen; the folder still holds every weight, so it loads offline too.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.errors import UserError
from protein_sedd.model.config import Esm2Config

ESM_FILES = [
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
]
SPECIAL = {"<pad>": "<pad>", "<mask>": "<mask>"}  # the project's special tokens by ESM's names
NOT_A_SCORE = -1.0e4  # logits of the pad and mask outputs: never drawn, finite under bf16
LORA_TARGETS = ["query", "key", "value"]  # ESM's attention projections


def pretrained_folder(source: str, revision: str | None) -> Path:
    """A local folder holding ESM-2's config.json, or the Hub snapshot of `source` (the HF cache)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(f"model.pretrained {path}: no config.json; pass a folder `save_pretrained` wrote")
        return path
    from protein_sedd.model.hub import fetch, is_hub_id

    if not is_hub_id(source):
        raise UserError(
            f"model.pretrained {source!r}: no such folder, and not a Hub id such as facebook/esm2_t6_8M_UR50D"
        )
    return fetch(
        source, None if revision in (None, "main") else revision, files=ESM_FILES, what="ESM-2 model"
    )


def resolve(model: dict, folder: Path | None = None) -> dict:
    """`model` with ESM's architecture and token ids read from the pretrained folder's config and vocab
    (`folder`: that folder, when the caller has found it already)."""
    import json

    folder = folder or pretrained_folder(str(model.get("pretrained")), model.get("revision"))
    try:
        esm = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{folder / 'config.json'}: unreadable ({type(err).__name__})") from None
    if esm.get("model_type") != "esm" or esm.get("is_folding_model"):
        raise UserError(
            f"{folder}: not an ESM-2 masked language model (model_type {esm.get('model_type')!r})"
        )
    vocabulary = _vocabulary(folder, esm)
    wanted = [*ALPHABET.tokens[: ALPHABET.n_residues], "<cls>", "<eos>", *SPECIAL.values()]
    missing = [t for t in wanted if t not in vocabulary]
    if missing:
        raise UserError(f"{folder}: its vocabulary has no {missing[0]!r} token; not an ESM-2 protein model")
    keep = {k: v for k, v in esm.items() if isinstance(v, (int, float, str, bool)) or v is None}
    positions = int(esm.get("max_position_embeddings", 1026))
    return {
        **model,
        "max_length": min(int(model.get("max_length", 1022)), positions - 2),  # <cls> and <eos> take two
        "esm": keep,
        "token_ids": {t: vocabulary[t] for t in wanted},
    }


def _vocabulary(folder: Path, esm: dict) -> dict[str, int]:
    """Token -> id from the folder's vocab.txt (one token a line), else ESM-2's standard vocabulary."""
    vocab = folder / "vocab.txt"
    if vocab.is_file():
        return {line.strip(): i for i, line in enumerate(vocab.read_text().splitlines()) if line.strip()}
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    tokens = list(get_default_vocab_list())
    if len(tokens) != esm.get("vocab_size"):
        raise UserError(f"{folder}: no vocab.txt and vocab_size {esm.get('vocab_size')} is not ESM-2's")
    return {t: i for i, t in enumerate(tokens)}


class Esm2Network(nn.Module):
    """ESM-2's masked-LM head as a score network: forward(tokens, sigma_bar, lengths) -> logits [B, L, 23]
    over the project's alphabet (see the module docstring)."""

    def __init__(self, config: Esm2Config, masked_lm=None):
        super().__init__()
        from transformers import EsmConfig, EsmForMaskedLM

        self.config = config
        ids = config.token_ids
        if masked_lm is None:
            masked_lm = EsmForMaskedLM(EsmConfig(**config.esm))
        contact_head = getattr(masked_lm.esm, "contact_head", None)
        if contact_head is not None:  # ESM's contact predictor takes no part in the score: frozen, so
            contact_head.requires_grad_(False)  # DDP does not wait for its gradients
        if config.lora_rank > 0:
            masked_lm = _with_lora(masked_lm, config)
        self.lm = masked_lm
        lookup = [ids[SPECIAL.get(t, t)] for t in ALPHABET.tokens]
        self.register_buffer("to_esm", torch.tensor(lookup), persistent=False)
        self.register_buffer("real", torch.tensor(lookup[: ALPHABET.n_residues]), persistent=False)
        self.cls_id, self.eos_id, self.pad_id = ids["<cls>"], ids["<eos>"], ids["<pad>"]

    @classmethod
    def pretrained(cls, config: Esm2Config, folder: Path | None = None) -> Esm2Network:
        """The network with ESM-2's pretrained weights (a new run's start); `folder` as for `resolve`."""
        from transformers import EsmForMaskedLM
        from transformers.utils import logging as hf_logging

        folder = folder or pretrained_folder(config.pretrained, config.revision)
        verbosity = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in a run's log
        hf_logging.set_verbosity_error()  # "some weights were not initialised" for the pooler: not ours
        try:
            masked_lm = EsmForMaskedLM.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise UserError(
                f"{folder}: cannot load ESM-2's weights ({' '.join(str(err).split())[:200]})"
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
        return cls(config, masked_lm)

    def _inputs(self, tokens: torch.Tensor, lengths: torch.Tensor | None):
        batch, width = tokens.shape
        if lengths is None:
            lengths = torch.full((batch,), width, device=tokens.device)
        ids = torch.full((batch, width + 2), self.pad_id, dtype=torch.long, device=tokens.device)
        ids[:, 0] = self.cls_id
        ids[:, 1 : width + 1] = self.to_esm[tokens]
        ids[torch.arange(batch, device=tokens.device), lengths.long() + 1] = self.eos_id
        attention = torch.arange(width + 2, device=tokens.device)[None, :] < (lengths[:, None] + 2)
        return ids, attention.long()

    def forward(self, tokens: torch.Tensor, sigma_bar: torch.Tensor, lengths: torch.Tensor | None = None):
        """tokens [B, L] (right-padded), sigma_bar [B] (unused: time-independent), lengths [B]
        -> logits [B, L, 23]."""
        ids, attention = self._inputs(tokens, lengths)
        logits = self.lm(input_ids=ids, attention_mask=attention).logits[:, 1 : tokens.shape[1] + 1]
        real = logits.index_select(-1, self.real).float()
        rest = torch.full(
            (*real.shape[:2], ALPHABET.size - ALPHABET.n_residues), NOT_A_SCORE, device=real.device
        )
        return torch.cat([real, rest], dim=-1)

    def hidden_states(
        self, tokens: torch.Tensor, sigma_bar: torch.Tensor, lengths: torch.Tensor | None = None
    ):
        """ESM's last hidden states at the residue positions [B, L, hidden_size]."""
        ids, attention = self._inputs(tokens, lengths)
        encoder = self.lm.base_model.model.esm if self.config.lora_rank > 0 else self.lm.esm
        states = encoder(input_ids=ids, attention_mask=attention).last_hidden_state
        return states[:, 1 : tokens.shape[1] + 1]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def trainable_share(self) -> tuple[int, int]:
        """(trainable parameters, all parameters)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad), self.num_parameters()


def _with_lora(masked_lm, config: Esm2Config):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("model.lora_rank > 0 needs peft: pip install peft") from None
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=LORA_TARGETS,
        bias="none",
    )
    with warnings.catch_warnings():  # transformers' deprecation notice about peft's own call: not ours
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(masked_lm, lora)


ZERO_SHOT = "esm2:"  # protein_sedd.load("esm2:facebook/esm2_t33_650M_UR50D"): ESM-2 as it was pretrained


def zero_shot(source: str, revision: str | None, device):
    """(network in eval mode, config, folder) of ESM-2 used as it was pretrained, with no fine-tuning: the
    absorbing graph and the default noise schedule, no training lengths (design takes `length=`; scores
    use a uniform p(L) over 1..max_length)."""
    from omegaconf import OmegaConf

    from protein_sedd.config.checks import validate_checkpoint_config
    from protein_sedd.config.compose import compose_config

    name = source[len(ZERO_SHOT) :]
    if not name:
        raise UserError(f"{source!r}: give a Hub id or a folder after {ZERO_SHOT!r} "
                        "(esm2:facebook/esm2_t33_650M_UR50D)")  # fmt: skip
    composed = compose_config(["model=esm2"])
    model = {**OmegaConf.to_container(composed.model), "pretrained": name, "revision": revision or "main"}
    folder = pretrained_folder(name, revision)  # found once: the Hub cache is asked once
    model = resolve(model, folder)
    config = OmegaConf.create({
        "model": model, "graph": OmegaConf.to_container(composed.graph),
        "noise": OmegaConf.to_container(composed.noise), "zero_shot": True,
    })  # fmt: skip
    validate_checkpoint_config(config, source)
    network = Esm2Network.pretrained(Esm2Config.from_dict(model), folder)
    return network.to(device).eval(), config, folder
