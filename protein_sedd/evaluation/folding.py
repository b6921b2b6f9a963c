"""ESMFold structure prediction: two backends, length-sorted batches under a token budget, pLDDT on 0-100.

Conventions (the same for both backends):

- per-residue pLDDT is the C-alpha atom's pLDDT (ESMFold predicts one per atom37 slot; AlphaFold and ColabFold
  report the C-alpha one), on the 0-100 scale; transformers' port predicts 0-1 and is converted here;
- mean pLDDT is the mean of the per-residue values; pTM is computed per sequence over its own residues only
  (transformers' batched `ptm` output is one number for the whole padded batch);
- PDB files carry the per-residue pLDDT as the B-factor of every atom of that residue.

Heavy libraries (transformers, fair-esm) are imported inside the functions that need them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from protein_sedd.errors import UserError

if TYPE_CHECKING:  # torch loads with a backend: the fold-eval command's --help needs none of it
    import torch

MAX_FOLD_LENGTH = (
    1024  # ESMFold was trained on chains up to 1024 residues; longer ones fold poorly and run out of memory
)
DEFAULT_MODEL = "facebook/esmfold_v1"
BACKENDS = ("transformers", "fair-esm")
CA_ATOM = 1  # index of C-alpha in the atom37 order (N, CA, C, CB, O, ...)
FAIR_ESM_CHECKPOINTS = ("esmfold_3B_v1.pt", "esm2_t36_3B_UR50D.pt")  # torch-hub files esmfold_v1() needs
DOWNLOAD_HINT = (
    "pass a local folder with {model} PATH, or fill the Hugging Face cache on a machine with internet with "
    "`hf download facebook/esmfold_v1` (the command-line tool of huggingface-hub)"
)


@dataclass(frozen=True)
class FoldedDesign:
    sequence: str
    residue_plddt: np.ndarray  # (length,), 0-100
    ptm: float
    pdb: str

    @property
    def mean_plddt(self) -> float:
        return float(np.mean(self.residue_plddt))


def plddt_to_percent(raw: np.ndarray, scale: float) -> np.ndarray:
    """Bring pLDDT from a backend's native scale (1.0 or 100.0) to 0-100, checking the values fit it."""
    raw = np.asarray(raw, dtype=np.float64)
    tolerance = 1e-4 * scale
    if raw.size and (raw.min() < -tolerance or raw.max() > scale + tolerance):
        raise RuntimeError(
            f"pLDDT values {raw.min():.3f}..{raw.max():.3f} are outside the expected 0-{scale:g}"
        )
    return np.clip(raw * (100.0 / scale), 0.0, 100.0)


def plan_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size (batch x longest) fits `max_tokens`.

    Sorting by length keeps padding small; a sequence longer than the budget gets a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current and (len(current) + 1) * lengths[index] > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _prepare(module, device: torch.device):
    """Inference mode on `device`: fp32 trunk everywhere; the language model in fp16 on CUDA only."""
    module.eval().float()  # checkpoints may store fp16 weights; fp16 matmuls are slow or missing on CPU
    if device.type == "cuda":
        module.esm.half()  # the 3B language model in fp16 halves its memory; the folding trunk stays fp32
    return module.to(device)


def _atom_b_factors(residue_plddt: np.ndarray) -> np.ndarray:
    return np.repeat(residue_plddt[:, None], 37, axis=1)


class _ESMFold:
    """What both backends share: run ESMFold on a batch and turn its output into scored PDB files."""

    plddt_scale: float  # the backend's pLDDT scale (1.0 or 100.0), converted to 0-100

    def fold(self, sequences: Sequence[str]) -> list[FoldedDesign]:
        import torch

        with torch.no_grad():
            return self._fold(sequences)

    def _fold(self, sequences: Sequence[str]) -> list[FoldedDesign]:
        atom14_to_atom37, Protein, to_pdb = self._structure_tools()
        output = self.model.infer(list(sequences))
        atom37 = atom14_to_atom37(output["positions"][-1], output).float().cpu().numpy()
        plddt = output["plddt"].float().cpu().numpy()
        atom_mask = output["atom37_atom_exists"].cpu().numpy()
        aatype = output["aatype"].cpu().numpy()
        residue_index = output["residue_index"].cpu().numpy()
        designs = []
        for i, sequence in enumerate(sequences):
            n = len(sequence)
            residue_plddt = plddt_to_percent(plddt[i, :n, CA_ATOM], self.plddt_scale)
            protein = Protein(
                atom_positions=atom37[i, :n],
                aatype=aatype[i, :n],
                atom_mask=atom_mask[i, :n],
                residue_index=residue_index[i, :n] + 1,
                b_factors=_atom_b_factors(residue_plddt),
            )
            designs.append(FoldedDesign(sequence, residue_plddt, self._ptm(output, i, n), to_pdb(protein)))
        return designs


class TransformersESMFold(_ESMFold):
    """transformers' `EsmForProteinFolding`, loaded from a local folder or the HF cache, never the network."""

    name = "transformers"
    plddt_scale = 1.0  # the port predicts pLDDT on 0-1

    def __init__(self, module, device: torch.device, chunk_size: int | None):
        self.model = _prepare(module, device)
        if chunk_size:
            self.model.trunk.set_chunk_size(chunk_size)

    @classmethod
    def load(cls, model: str, device: torch.device, chunk_size: int | None) -> TransformersESMFold:
        return cls(_load_transformers_model(model), device, chunk_size)

    @staticmethod
    def _structure_tools():
        from transformers.models.esm.openfold_utils.feats import atom14_to_atom37
        from transformers.models.esm.openfold_utils.protein import Protein, to_pdb

        return atom14_to_atom37, Protein, to_pdb

    def _ptm(self, output, index: int, n: int) -> float:
        """pTM over this sequence's own residues (the port's batched `ptm` mixes the padded batch)."""
        from transformers.models.esm.openfold_utils.loss import compute_tm

        logits = output["ptm_logits"][index, :n, :n].float()
        return float(compute_tm(logits, max_bin=31, no_bins=self.model.distogram_bins))


def _is_hub_id(model: str) -> bool:
    """'org/name' as the Hugging Face hub spells model ids (anything else is a filesystem path)."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model) is not None


def _load_transformers_model(model: str):
    if importlib.util.find_spec("transformers") is None:
        raise UserError(
            "the transformers backend needs the 'transformers' package: pip install 'protein-sedd[fold]'"
        )
    from transformers import EsmConfig, EsmForProteinFolding
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own progress bar is the one that counts designs
    local = Path(model).expanduser()
    if local.exists():
        if not local.is_dir() or not (local / "config.json").is_file():
            raise UserError(
                f"{{model}} {model}: not an ESMFold model folder (expected config.json and weights)",
                field="model",
            )
        source = str(local)
    elif not _is_hub_id(model):
        raise UserError(f"{{model}} {model}: no such folder; {DOWNLOAD_HINT}", field="model")
    else:
        source = model
    try:
        config = EsmConfig.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        if local.exists():
            raise UserError(
                f"{{model}} {model}: unreadable config.json ({_one_line(err)})", field="model"
            ) from None
        raise UserError(
            f"ESMFold weights {model!r} are not in the Hugging Face cache; {DOWNLOAD_HINT}", field="model"
        ) from None
    if not config.is_folding_model:
        raise UserError(
            f"{{model}} {model}: an ESM language model, not ESMFold (config has is_folding_model false)",
            field="model",
        )
    try:
        return EsmForProteinFolding.from_pretrained(source, local_files_only=True)
    except Exception as err:  # a truncated or corrupt download fails in many ways (safetensors, torch, json)
        raise UserError(
            f"{{model}} {model}: cannot load the ESMFold weights ({type(err).__name__}: {_one_line(err)}); "
            f"replace them with a fresh copy ({DOWNLOAD_HINT})",
            field="model",
        ) from None


def _one_line(err: Exception, limit: int = 200) -> str:
    return " ".join(str(err).split())[:limit]


class FairEsmESMFold(_ESMFold):
    """fair-esm's `esmfold_v1()` (needs openfold); weights from the torch-hub cache or a local .pt file."""

    name = "fair-esm"
    plddt_scale = 100.0  # fair-esm already reports 0-100

    def __init__(self, module, device: torch.device, chunk_size: int | None):
        self.model = _prepare(module, device)
        if chunk_size:
            self.model.set_chunk_size(chunk_size)

    @classmethod
    def load(cls, model: str, device: torch.device, chunk_size: int | None) -> FairEsmESMFold:
        if importlib.util.find_spec("openfold") is None:
            raise UserError(
                "{backend} fair-esm needs openfold, which is not installed; "
                "use {backend} transformers (the default)",
                field="backend",
            )
        if importlib.util.find_spec("esm") is None:
            raise UserError(
                "{backend} fair-esm needs the fair-esm package: pip install 'fair-esm[esmfold]'",
                field="backend",
            )
        return cls(_load_fair_esm_model(model), device, chunk_size)

    @staticmethod
    def _structure_tools():
        from openfold.np.protein import Protein, to_pdb
        from openfold.utils.feats import atom14_to_atom37

        return atom14_to_atom37, Protein, to_pdb

    def _ptm(self, output, index: int, n: int) -> float:
        return float(output["ptm"][index])  # fair-esm computes pTM per sequence already


def _load_fair_esm_model(model: str):
    import esm
    import torch

    local = Path(model).expanduser()
    if local.is_file() and local.suffix == ".pt":
        from esm.esmfold.v1.pretrained import _load_model  # fair-esm's own loader for a local checkpoint

        return _load_model(str(local))
    if model != DEFAULT_MODEL:
        raise UserError(
            f"{{model}} {model}: {{backend}} fair-esm takes {DEFAULT_MODEL} or a local esmfold .pt file",
            field=("model", "backend"),
        )
    # esmfold_v1() downloads when its files are missing; look first so nothing tries the network
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    missing = [name for name in FAIR_ESM_CHECKPOINTS if not (checkpoints / name).is_file()]
    if missing:
        raise UserError(
            f"fair-esm ESMFold weights missing from {checkpoints} ({', '.join(missing)}); copy them there or "
            "use {backend} transformers with a local {model} PATH",
            field=("model", "backend"),
        )
    return esm.pretrained.esmfold_v1()


def load_backend(backend: str, model: str, device: torch.device, chunk_size: int | None):
    if backend == "transformers":
        return TransformersESMFold.load(model, device, chunk_size)
    if backend == "fair-esm":
        return FairEsmESMFold.load(model, device, chunk_size)
    raise UserError(f"{{backend}} {backend!r}: expected one of {', '.join(BACKENDS)}", field="backend")


def fold_in_batches(
    backend, sequences: Sequence[str], max_tokens: int
) -> Iterator[tuple[list[int], list[FoldedDesign]]]:
    """Fold `sequences`; yields (indices, results) per batch. A batch that runs out of GPU memory is split."""
    lengths = [len(s) for s in sequences]
    for batch in plan_batches(lengths, max_tokens):
        yield from fold_batch(backend, sequences, batch)


def fold_batch(
    backend, sequences: Sequence[str], batch: list[int]
) -> Iterator[tuple[list[int], list[FoldedDesign]]]:
    """Fold sequences[i] for i in `batch`, halving the batch each time it runs out of GPU memory."""
    import torch

    try:
        yield batch, backend.fold([sequences[i] for i in batch])
    except torch.cuda.OutOfMemoryError:
        if len(batch) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(batch) // 2
        yield from fold_batch(backend, sequences, batch[:half])
        yield from fold_batch(backend, sequences, batch[half:])
