"""The kinds of score network, one entry each in `NETWORKS`, chosen by the config's `model.kind`.

Every kind is called the same way, `network(tokens, sigma_bar, lengths) -> logits [B, L, vocab]` over the
project's alphabet, with `hidden_states(...)` for embeddings and `num_parameters()`; the graph turns logits
into scores (diffusion/graph.py), so nothing past this module knows which network it holds. A kind says:

- `config`: its settings dataclass (model/config.py, torch-free: the config checks read it);
- `build(settings)`: the architecture, weights not yet read (a checkpoint's, or a skeleton on the meta
  device for checking a weights file's header);
- `start(settings)`: what a new run trains from (the DDiT: a seeded random init; ESM-2: its pretrained
  weights);
- `resolve(model)`: what a new run must record in its config before anything is built (ESM-2: the
  pretrained model's architecture and token ids, so its checkpoints load with no access to the original).

A config without `model.kind` is a DDiT (every config before ESM-2 was).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from protein_sedd.errors import UserError
from protein_sedd.model.config import DDiTConfig, Esm2Config


@dataclass(frozen=True)
class NetworkKind:
    name: str
    config: type
    build: Callable
    start: Callable
    resolve: Callable[[dict], dict]


def _ddit(settings):
    from protein_sedd.model import DDiT  # the package's name (tests record what it builds)

    return DDiT(settings)


def _esm2(settings):
    from protein_sedd.model.esm2 import Esm2Network

    return Esm2Network(settings)


def _esm2_pretrained(settings):
    from protein_sedd.model.esm2 import Esm2Network

    return Esm2Network.pretrained(settings)


def _esm2_resolve(model: dict) -> dict:
    from protein_sedd.model.esm2 import resolve

    return resolve(model)


NETWORKS: dict[str, NetworkKind] = {
    "ddit": NetworkKind("ddit", DDiTConfig, _ddit, _ddit, lambda model: model),
    "esm2": NetworkKind("esm2", Esm2Config, _esm2, _esm2_pretrained, _esm2_resolve),
}


def kind_name(model: Mapping) -> str:
    return str(model.get("kind", "ddit"))


def network_kind(model: Mapping, where: str = "") -> NetworkKind:
    name = kind_name(model)
    if name not in NETWORKS:
        raise UserError(f"{where}model.kind={name!r}: choose {' or '.join(NETWORKS)}")
    return NETWORKS[name]


def settings_of(model: Mapping):
    """The `model` section as its kind's settings dataclass."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(model) if isinstance(model, DictConfig) else dict(model)
    return network_kind(plain).config.from_dict(plain)


def describe(model: Mapping) -> str:
    """The architecture in words: "DDiT, 4 layers, hidden size 128" or "ESM-2 (facebook/...) fine-tuned,
    6 layers, hidden size 320"."""
    if kind_name(model) == "esm2":
        esm = model.get("esm") or {}
        how = f"LoRA rank {model.get('lora_rank')}" if model.get("lora_rank") else "fully fine-tuned"
        layers, hidden = esm.get("num_hidden_layers"), esm.get("hidden_size")
        return f"ESM-2 ({model.get('pretrained')}, {how}), {layers} layers, hidden size {hidden}"
    layers, hidden = model.get("n_layers"), model.get("hidden_size")
    return f"DDiT {model.get('name', '')}, {layers} layers, hidden size {hidden}"


def build_network(model: Mapping):
    """The architecture `model` describes (weights not read)."""
    return network_kind(model).build(settings_of(model))


def start_network(model: Mapping):
    """What a new run of `model` trains from."""
    return network_kind(model).start(settings_of(model))
