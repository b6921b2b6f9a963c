"""Validation of every config that reaches the model or the trainer: a composed training config (with its
command-line overrides), a resumed run's config and a loaded checkpoint's config.

Each mistake is one `UserError` naming the key, raised before anything is built: wrong types, missing
keys or sections, unknown graphs and noises, non-finite or out-of-range numbers and sizes that could not
be allocated. Checks run on plain resolved containers, so interpolations are resolved (or refused) once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from protein_sedd.config.limits import MAX_SEED
from protein_sedd.config.schema import DataSettings, TrainerSettings, ranges_of, types_of
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.family.training_set import AUTO_VERSIONS
from protein_sedd.data.family.training_set import LENGTH_PRIORS as LENGTH_PRIOR_CHOICES
from protein_sedd.data.family.training_set import WEIGHTS as WEIGHT_CHOICES
from protein_sedd.data.representation import REPRESENTATIONS, representation_for
from protein_sedd.data.splits import SPLIT_METHODS
from protein_sedd.diffusion.graph import GRAPHS
from protein_sedd.diffusion.noise import NOISES
from protein_sedd.errors import UserError
from protein_sedd.model.config import DDiTConfig, Esm2Config
from protein_sedd.model.networks import kind_name

NOISE_PARAMETERS = {name: kind.PARAMETERS for name, kind in NOISES.items()}
# a bound on the parameter count (10 billion: 40 GB of fp32 weights) catches absurd sizes before torch
# tries to allocate them; each dimension is bounded too, so the message can name the key
MAX_PARAMETERS = 10_000_000_000
MODEL_RANGES = ranges_of(DDiTConfig)
MODEL_TYPES = types_of(DDiTConfig)
ESM2_RANGES = ranges_of(Esm2Config)
ESM2_TYPES = types_of(Esm2Config)
ESM2_ARCHITECTURE = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "max_position_embeddings",
)  # fmt: skip
TRAINER_TYPES = types_of(TrainerSettings)
TRAINER_INT_RANGES = ranges_of(TrainerSettings)
DATA_TYPES = types_of(DataSettings)
SPLIT_CHOICES = f"{', '.join(SPLIT_METHODS[:-1])} or {SPLIT_METHODS[-1]}"


def _resolved(cfg, where: str) -> dict:
    """The config as plain Python values, its interpolations resolved; a failure names the config."""
    if isinstance(cfg, Mapping) and not isinstance(cfg, DictConfig):
        return dict(cfg)
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise UserError(f"{where}cannot resolve the config ({' '.join(str(err).split())[:200]})") from None


def _check_types(where: str, section: str, values: dict, types: dict[str, type]) -> None:
    """Overrides arrive as YAML scalars: refuse a string where a number or flag belongs."""
    for key, expected in types.items():
        if key not in values:
            raise UserError(f"{where}{section}.{key}: missing")
        value = values[key]
        numeric_ok = expected is float and isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, bool) != (expected is bool) or not (isinstance(value, expected) or numeric_ok):
            raise UserError(f"{where}{section}.{key}={value!r}: expected {expected.__name__}")
        if expected is float and not math.isfinite(value):
            raise UserError(f"{where}{section}.{key}={value!r}: must be a finite number")


def _section(where: str, cfg: dict, name: str) -> dict:
    section = cfg.get(name)
    if not isinstance(section, dict):
        raise UserError(f"{where}{name}: missing section (a '{name}:' mapping is needed)")
    return section


def _require(where: str, checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise UserError(f"{where}{message}")


def check_model(where: str, model: dict) -> None:
    """The `model` section of its kind (model/networks.py): a DDiT's, or ESM-2's."""
    checks = {"ddit": check_ddit_model, "esm2": check_esm2_model}
    kind = kind_name(model)
    if kind not in checks:
        raise UserError(f"{where}model.kind={kind!r}: choose {' or '.join(checks)}")
    checks[kind](where, model)


def check_esm2_model(where: str, model: dict) -> None:
    """ESM-2's section: its own keys, and the architecture and token ids a run recorded from the
    pretrained model (bounded like a DDiT's size, so a damaged config cannot ask for absurd tensors)."""
    _check_types(where, "model", model, ESM2_TYPES)
    for key, (low, high) in ESM2_RANGES.items():
        if not low <= model[key] <= high:
            raise UserError(f"{where}model.{key}={model[key]} must be in {low}..{high:_}")
    _require(
        where,
        [
            (
                model["vocab_size"] == ALPHABET.size,
                f"model.vocab_size must be {ALPHABET.size} (the alphabet size)",
            ),
            (
                not model["time_conditioning"] and not model["causal"],
                "model=esm2 is time-independent and bidirectional: "
                "set model.time_conditioning and model.causal false",
            ),
            (0 <= model["lora_dropout"] < 1, f"model.lora_dropout={model['lora_dropout']} must be in [0, 1)"),
            (model["lora_alpha"] > 0, f"model.lora_alpha={model['lora_alpha']} must be > 0"),
        ],
    )
    esm, ids = model["esm"], model["token_ids"]
    for key in ESM2_ARCHITECTURE:
        value = esm.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
            raise UserError(
                f"{where}model.esm.{key}={value!r}: expected a whole number in 1..1_000_000 "
                "(recorded from the pretrained model's config.json)"
            )
    h, layers = esm["hidden_size"], esm["num_hidden_layers"]
    parameters = layers * (4 * h * h + 2 * h * esm["intermediate_size"]) + esm["vocab_size"] * h
    _require(
        where,
        [
            (
                parameters <= MAX_PARAMETERS,
                f"model.esm: about {parameters:.2g} parameters, above the limit of {MAX_PARAMETERS:.0e}",
            ),
            (
                h % esm["num_attention_heads"] == 0,
                "model.esm.hidden_size must be divisible by num_attention_heads",
            ),
            (
                model["max_length"] <= esm["max_position_embeddings"] - 2,
                f"model.max_length={model['max_length']}: ESM-2 reads at most "
                f"{esm['max_position_embeddings'] - 2} residues (its positions less <cls> and <eos>)",
            ),
        ],
    )
    wanted = [*ALPHABET.tokens[: ALPHABET.n_residues], "<cls>", "<eos>", "<pad>", "<mask>"]
    for token in wanted:
        value = ids.get(token)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < esm["vocab_size"]:
            raise UserError(
                f"{where}model.token_ids[{token!r}]={value!r}: expected an id in "
                f"0..{esm['vocab_size'] - 1} (ESM's token id, recorded when the run started)"
            )
    if len({ids[t] for t in wanted}) < len(wanted):
        raise UserError(f"{where}model.token_ids: two tokens share an id")


def check_ddit_model(where: str, model: dict) -> None:
    _check_types(where, "model", model, MODEL_TYPES)
    for key, (low, high) in MODEL_RANGES.items():
        if not low <= model[key] <= high:
            raise UserError(f"{where}model.{key}={model[key]} must be in {low}..{high:_}")
    h, heads, layers, cond = model["hidden_size"], model["n_heads"], model["n_layers"], model["cond_dim"]
    parameters = layers * ((4 + 2 * model["mlp_ratio"]) * h * h + 6 * h * cond) + 2 * model["max_length"] * h
    _require(
        where,
        [
            (
                model["vocab_size"] == ALPHABET.size,
                f"model.vocab_size must be {ALPHABET.size} (the alphabet size)",
            ),
            (h % heads == 0, "model.hidden_size must be divisible by model.n_heads"),
            (
                (h // heads) % 2 == 0,
                "model.hidden_size / model.n_heads (the head size) must be even (rotary)",
            ),
            (0 <= model["dropout"] < 1, f"model.dropout={model['dropout']} must be in [0, 1)"),
            (
                parameters <= MAX_PARAMETERS,
                f"model.hidden_size={h}, model.n_layers={layers}: about {parameters:.2g} parameters, "
                f"above the limit of {MAX_PARAMETERS:.0e}",
            ),
            (
                not model["causal"] or not model["time_conditioning"],
                "model=ar (causal) takes no time conditioning: set model.time_conditioning=false",
            ),
        ],
    )


def check_graph_and_noise(where: str, cfg: dict) -> None:
    graph, noise = _section(where, cfg, "graph"), _section(where, cfg, "noise")
    if graph.get("name") not in GRAPHS:
        raise UserError(f"{where}graph.name={graph.get('name')!r}: choose {' or '.join(GRAPHS)}")
    kind = noise.get("type")
    if kind not in NOISE_PARAMETERS:
        raise UserError(f"{where}noise.type={kind!r}: choose {' or '.join(NOISE_PARAMETERS)}")
    _check_types(where, "noise", noise, dict.fromkeys(NOISE_PARAMETERS[kind], float))
    if kind == "loglinear":
        _require(where, [(0 < noise["eps"] < 1, f"noise.eps={noise['eps']} must be in (0, 1)")])
    else:
        low, high = noise["sigma_min"], noise["sigma_max"]
        _require(where, [(0 < low < high, f"noise.sigma_min={low}, sigma_max={high}: need 0 < min < max")])
    model = cfg.get("model") or {}
    _require(
        where,
        [
            (
                graph["name"] == "absorbing" or model.get("time_conditioning"),
                "graph=uniform needs model.time_conditioning=true (its scores depend on the noise level)",
            )
        ],
    )


def check_data(where: str, data: dict) -> None:
    _check_types(where, "data", data, DATA_TYPES)
    fasta = data.get("fasta")
    valid, test = data["valid_fraction"], data["test_fraction"]
    _require(
        where,
        [
            (fasta is None or isinstance(fasta, str), f"data.fasta={fasta!r}: expected a path"),
            (data["name"] != "fasta" or fasta, "data=fasta needs a file: pass --fasta PATH"),
            (0 <= valid < 1, f"data.valid_fraction={valid} must be in [0, 1)"),
            (0 <= test < 1, f"data.test_fraction={test} must be in [0, 1)"),
            (valid + test < 1, "data.valid_fraction + data.test_fraction must leave room for training"),
            (data["min_length"] >= 1, f"data.min_length={data['min_length']} must be >= 1"),
            (
                data.get("split", SPLIT_METHODS[0]) in SPLIT_METHODS,  # absent: a run from before data.split
                f"data.split={data.get('split')!r}: choose {SPLIT_CHOICES}",
            ),
        ],
    )
    check_family_keys(where, data)


def check_family_keys(where: str, data: dict) -> None:
    """The alignment keys (data/family/training_set.py), optional: a config from before them lacks them."""
    weights, identity = data.get("weights", "none"), data.get("weight_identity", 0.8)
    coverage, prior, focus = data.get("min_coverage", 0.0), data.get("length_prior", "all"), data.get("focus")
    representation = data.get("representation", "sequence")
    version = data.get("auto_version", 1)
    split_identity = data.get("split_identity", 0.5)

    def number_in(value, low, high) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high

    _require(
        where,
        [
            (weights in WEIGHT_CHOICES, f"data.weights={weights!r}: choose {', '.join(WEIGHT_CHOICES)}"),
            (
                number_in(identity, 1e-9, 1),
                f"data.weight_identity={identity!r}: expected a number in (0, 1], e.g. 0.8",
            ),
            (
                version in AUTO_VERSIONS and not isinstance(version, bool),
                f"data.auto_version={version!r}: choose {' or '.join(map(str, AUTO_VERSIONS))}",
            ),
            (
                coverage == "auto" or number_in(coverage, 0, 1),
                f"data.min_coverage={coverage!r}: expected auto or a number in [0, 1], e.g. 0.5",
            ),
            (
                prior in LENGTH_PRIOR_CHOICES,
                f"data.length_prior={prior!r}: choose {', '.join(LENGTH_PRIOR_CHOICES)}",
            ),
            (
                focus is None or isinstance(focus, (str, int)) and not isinstance(focus, bool),
                f"data.focus={focus!r}: expected a record id",
            ),
            (
                number_in(split_identity, 1e-9, 1),
                f"data.split_identity={split_identity!r}: expected a number in (0, 1], e.g. 0.5",
            ),
            (
                representation in REPRESENTATIONS,
                f"data.representation={representation!r}: choose {' or '.join(REPRESENTATIONS)}",
            ),
        ],
    )


def check_trainer(where: str, t: dict) -> None:
    _check_types(where, "trainer", t, TRAINER_TYPES)
    for key, (low, high) in TRAINER_INT_RANGES.items():
        if not low <= t[key] <= high:
            raise UserError(f"{where}trainer.{key}={t[key]} must be in {low}..{high:_}")
    betas = t["betas"]
    betas_ok = len(betas) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas
    )
    _require(
        where,
        [
            (betas_ok, f"trainer.betas={betas!r}: expected two numbers in [0, 1), e.g. [0.9, 0.98]"),
            (t["lr"] > 0, f"trainer.lr={t['lr']} must be > 0"),
            (0 <= t["min_lr_ratio"] <= 1, f"trainer.min_lr_ratio={t['min_lr_ratio']} must be in [0, 1]"),
            (t["weight_decay"] >= 0, f"trainer.weight_decay={t['weight_decay']} must be >= 0"),
            (t["grad_clip"] > 0, f"trainer.grad_clip={t['grad_clip']} must be > 0"),
            (0 <= t["ema"] < 1, f"trainer.ema={t['ema']} must be in [0, 1)"),
            (0 < t["sampling_eps"] < 1, f"trainer.sampling_eps={t['sampling_eps']} must be in (0, 1)"),
            (
                t["schedule"] in ("constant", "cosine"),
                f"trainer.schedule={t['schedule']!r}: choose constant or cosine",
            ),
            (
                t["precision"] in ("auto", "bf16", "fp32"),
                f"trainer.precision={t['precision']!r}: choose auto, bf16 or fp32",
            ),
        ],
    )


def check_seed(where: str, cfg: dict) -> None:
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"{where}seed={seed!r}: expected a whole number in 0..{MAX_SEED:_}")


def check_init_from(where: str, cfg: dict) -> None:
    """The parent record of a fine-tuning run (`train --init-from`), when there is one."""
    if cfg.get("init_from") is None:
        return
    record = _section(where, cfg, "init_from")
    _check_types(where, "init_from", record, {"source": str, "path": str, "sha256": str, "step": int})
    sha256 = record["sha256"]
    _require(
        where,
        [
            (
                len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256),
                f"init_from.sha256={sha256!r}: expected 64 lower-case hex digits",
            ),
            (record["step"] >= 0, f"init_from.step={record['step']} must be >= 0"),
        ],
    )


def validate_config(cfg) -> None:
    """A whole training config: model, data, graph, noise, trainer, seed and the parent of a fine-tune."""
    plain = _resolved(cfg, "")
    check_model("", _section("", plain, "model"))
    _check_types("", "model", plain["model"], {"name": str})  # names the default run directory
    check_data("", _section("", plain, "data"))
    check_graph_and_noise("", plain)
    check_trainer("", _section("", plain, "trainer"))
    check_seed("", plain)
    check_init_from("", plain)


def check_histogram(where: str, histogram) -> None:
    ok = isinstance(histogram, list) and all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], int)
        and isinstance(pair[1], (int, float))
        and not any(isinstance(v, bool) for v in pair)
        and pair[0] >= 1
        and 0 <= pair[1] < math.inf
        for pair in histogram
    )
    if not ok:
        raise UserError(
            f"{where}lengths.histogram: expected a list of [length, count] pairs, a whole-number length "
            "and a finite count >= 0 (a summed weight in a weighted run)"
        )
    if len({pair[0] for pair in histogram}) < len(histogram):  # p(L) would depend on which pair is read
        raise UserError(f"{where}lengths.histogram: each length may appear once")


def validate_checkpoint_config(cfg, path) -> None:
    """What design and evaluate use from a checkpoint's config: model, graph, noise and, when present,
    data, the length histogram and the step. A message starts with the config file's path."""
    where = f"{path}: "
    plain = _resolved(cfg, where)
    check_model(where, _section(where, plain, "model"))
    check_graph_and_noise(where, plain)
    for name in ("data", "dataset", "lengths", "alphabet"):
        if name in plain and not isinstance(plain[name], dict):
            raise UserError(f"{where}{name}: expected a mapping, found {type(plain[name]).__name__}")
    if "data" in plain:
        check_data(where, plain["data"])
        representation_for(plain, where)  # a focus_columns model's record of its focus
    if plain.get("lengths", {}).get("histogram") is not None:
        check_histogram(where, plain["lengths"]["histogram"])
    step = plain.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UserError(f"{where}step={step!r}: expected a whole number >= 0")
