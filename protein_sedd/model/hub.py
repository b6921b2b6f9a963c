"""Models on the Hugging Face Hub: fetch a saved model folder by its id, and describe one in a model card.

A saved model folder (`ProteinSEDD.save_pretrained`) holds `model.safetensors`, `config.yaml`,
`provenance.json` and `README.md`, the model card whose front matter the Hub reads (`library_name`,
tags). `hf upload USER/REPO FOLDER` publishes it as is; `protein_sedd.load("USER/REPO")` fetches it through
huggingface_hub, which keeps its own cache and honours `HF_HUB_OFFLINE`, `HF_HOME` and revisions.
"""

from __future__ import annotations

import re
from pathlib import Path

from protein_sedd.errors import UserError

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
MODEL_FILES = ["model.safetensors", "config.yaml", "provenance.json", "README.md"]


def is_hub_id(source: str) -> bool:
    """'user/repo' as the Hub spells model ids (a path that exists locally is never taken for one)."""
    return HUB_ID.fullmatch(source) is not None


def is_saved_model(folder: Path) -> bool:
    """A folder `save_pretrained` wrote: weights, config, and a model card naming this library."""
    card = folder / "README.md"
    if not all((folder / name).is_file() for name in MODEL_FILES):
        return False
    try:
        return "library_name: protein-sedd" in card.read_text(errors="replace")[:2000]
    except OSError:
        return False


def fetch(
    repo_id: str, revision: str | None = None, files: list[str] = MODEL_FILES, what: str = "model"
) -> Path:
    """The local folder of a Hub model (downloaded into the Hugging Face cache when online): `files`
    only (a protein-sedd folder's by default); `what` names it in the messages."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            HfHubHTTPError,
            HFValidationError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise UserError(
            f"{repo_id}: loading from the Hub needs huggingface-hub: pip install huggingface-hub"
        ) from None
    fetch_hint = f"fetch it once on a machine with internet (`hf download {repo_id}`) or pass a local folder"
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=files)
    except HFValidationError as err:  # the shape of a user/repo id, but not one the Hub allows
        reason = " ".join(str(err).split()).rstrip(".")
        raise UserError(
            f"{repo_id}: no local folder of that name, and not a valid Hub model id ({reason[:200]})"
        ) from None
    except LocalEntryNotFoundError:
        raise UserError(
            f"{repo_id}: no local folder of that name, not in the Hugging Face cache, and the Hub cannot be "
            f"reached (offline or HF_HUB_OFFLINE=1); {fetch_hint}"
        ) from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{repo_id}: no such {what} on the Hub (or it is private: run `hf auth login`)"
        ) from None
    except HfHubHTTPError as err:
        raise UserError(
            f"{repo_id}: the Hub refused the download ({' '.join(str(err).split())[:160]})"
        ) from None
    return Path(folder)


def model_card(name: str, config, provenance: dict, parameters: int) -> str:
    """README.md for a saved model: Hub metadata, what it was trained on, how well, how to use it."""
    from protein_sedd.model.networks import describe

    dataset = config.get("dataset", {}) or {}
    data_name = dataset.get("name") or (provenance.get("data") or {}).get("dataset") or "unknown"
    sha256 = dataset.get("sha256") or (provenance.get("data") or {}).get("sha256") or "unknown"
    held_out = [e for e in provenance.get("evaluations", []) if str(e.get("source", "")).endswith(":test")]
    bound = held_out[-1].get("bits_per_residue") if held_out else None
    lines = [
        "---",
        "library_name: protein-sedd",
        "tags:",
        "- protein",
        "- protein-design",
        "- discrete-diffusion",
        "- sedd",
        "---",
        "",
        f"# {name}",
        "",
        "A protein-sedd model: a score network trained with score entropy under an absorbing (masking)",
        "diffusion, which designs new members of its protein family by Tweedie tau-leaping.",
        "",
        f"- architecture: {describe(config.model)}, {parameters:,} parameters, "
        f"context {config.model.max_length} residues",
        f"- graph: {config.graph.name}; noise: {config.noise.type}; "
        f"time conditioning: {bool(config.model.time_conditioning)}",
        f"- training data: {data_name} (sha256 {sha256})",
        f"- training steps: {config.get('step', provenance.get('steps', 'unknown'))}",
    ]
    parent = provenance.get("init_from")
    if isinstance(parent, dict):
        lines.append(
            f"- fine-tuned from: {parent.get('source')} (step {parent.get('step')}, "
            f"sha256 {parent.get('sha256')})"
        )
    if bound is not None:
        lines.append(
            f"- held-out bound: {bound:.4f} bits per residue (an upper bound on -log p(x), test split)"
        )
    lines += [
        "",
        "```python",
        "import protein_sedd",
        f'model = protein_sedd.load("{name}")  # this folder, or its Hub id',
        "designs = model.design(10, steps=256, seed=0)",
        "```",
        "",
    ]
    return "\n".join(lines)
