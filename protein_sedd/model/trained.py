"""A trained model, built once from its network and config: everything a use of a checkpoint needs.

    model = TrainedModel.load("acyp-tiny", torch.device("cpu"))
    model.network, model.graph, model.noise      # the score network and its forward process
    model.length_prior                           # p(L) of the training split (data/length_prior.py)
    model.representation                         # how it reads proteins (data/representation.py)
    nats, error = model.nats(tokens, t_samples=32, batch_size=64, seed=0)   # -log p(x) per sequence

The public `protein_sedd.ProteinSEDD` is this object with the user's methods on it; the likelihood report
(`evaluate`), variant scoring, design and the trainer's validation (over the EMA network and the run's
config) take it, so the graph, noise schedule, length prior and representation are read from a config in
one place. The autoregressive baseline (`model=ar`) is the one model whose likelihood is exact: `bound`
says which estimate it returns.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch
from omegaconf import DictConfig

from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.length_prior import LengthPrior
from protein_sedd.data.representation import representation_for
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.noise import build_noise
from protein_sedd.errors import UserError
from protein_sedd.io.fasta import normalised_sequence
from protein_sedd.runtime.devices import inference_autocast


class TrainedModel:
    """A network with its config, graph, noise schedule, length prior and representation."""

    def __init__(self, network, config: DictConfig, path: Path | None = None):
        self.network = network
        self.config = config
        self.path = path
        self.graph = build_graph(config.graph.name, ALPHABET)
        self.noise = build_noise(config.noise)

    @classmethod
    def load(cls, source=None, device: torch.device | str = "cpu", revision: str | None = None):
        """From a checkpoint, run directory, saved folder, bundled name or Hub id (see sources.py)."""
        from protein_sedd.model.sources import load_checkpoint

        checkpoint = load_checkpoint(source, device, revision)
        model = cls(checkpoint.model, checkpoint.config, checkpoint.path)
        _ = model.representation  # a damaged focus record shows at load
        return model

    @cached_property
    def representation(self):
        """How it reads proteins (data/representation.py): a damaged focus record is a UserError."""
        return representation_for(self.config, f"{self.path}: " if self.path is not None else "")

    @cached_property
    def length_prior(self) -> LengthPrior:
        """p(L) of the recorded training lengths (read when first used: a run in training has none yet)."""
        return LengthPrior.from_config(self.config)

    @property
    def focus(self):
        """A focus_columns model's FocusMapping (its focus sequence and columns), else None."""
        return self.representation.focus

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @property
    def max_length(self) -> int:
        return int(self.config.model.max_length)

    @property
    def is_autoregressive(self) -> bool:
        """The autoregressive baseline (`model=ar`) scores exactly but cannot design."""
        return bool(self.config.model.get("causal", False))

    def check_can_design(self) -> None:
        """Refuse to design with the autoregressive baseline (it has no denoiser to sample from)."""
        if self.is_autoregressive:
            raise UserError(
                f"{self.path}: the autoregressive baseline (model=ar) cannot design; use a SEDD model"
            )

    def bound(
        self, tokens, *, t_samples: int, batch_size: int, seed: int, progress=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(x | L), its Monte Carlo standard error) per sequence in nats, on the CPU: the negative
        ELBO over `t_samples` stratified noise levels (diffusion/likelihood.py), or for the autoregressive
        baseline the exact negative log-likelihood (error 0). No autocast: the caller chooses."""
        if self.is_autoregressive:
            from protein_sedd.baselines.autoregressive import dataset_nll

            nll = dataset_nll(
                self.network, tokens, batch_size=batch_size, start_index=ALPHABET.mask_index,
                pad_index=ALPHABET.pad_index, progress=progress,
            )  # fmt: skip
            return nll, torch.zeros_like(nll)
        from protein_sedd.diffusion.likelihood import dataset_negative_elbo_with_error

        return dataset_negative_elbo_with_error(
            self.network, self.graph, tokens, t_samples=t_samples, batch_size=batch_size, seed=seed,
            progress=progress,
        )  # fmt: skip

    def nats(
        self, tokens, *, t_samples: int, batch_size: int, seed: int, progress=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(x) per sequence in nats, the length term -log p(L) included; its standard error).

        An upper bound for SEDD, exact for the autoregressive baseline. bf16 autocast on CUDA. The same
        seed and batch size give the same numbers.
        """
        with torch.no_grad(), inference_autocast(self.device):
            bound, error = self.bound(
                tokens, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=progress
            )
        lengths = torch.tensor([len(t) for t in tokens])
        return bound - self.length_prior.log_prob(lengths), error

    def rows(self, sequences) -> tuple[list[str], list[str]]:
        """The user's sequences as (ids, rows): plain strings (ids seq_1, seq_2, ...), records with .id and
        .sequence (designs, FASTA records) or Biopython SeqRecords (.id and .seq), normalised and checked to
        be rows this model reads (for focus_columns, a row over its columns) that fit its context."""
        if isinstance(sequences, (str, bytes)):
            raise UserError("give a list of sequences, not one string")
        if not hasattr(sequences, "__iter__"):
            raise UserError(f"give a list of sequences, not {type(sequences).__name__}")
        ids, texts = [], []
        for number, item in enumerate(sequences, start=1):
            ident = getattr(item, "id", None) or f"seq_{number}"
            raw = getattr(item, "sequence", item)
            if raw is item and hasattr(item, "seq"):  # a Biopython SeqRecord
                raw = str(item.seq)
            if not isinstance(raw, str):
                raise UserError(f"sequence {number}: expected a string, got {type(raw).__name__}")
            text = normalised_sequence(raw, f"sequence {ident!r}")
            self.representation.check_rows([(f"sequence {ident!r}", len(text))])
            if len(text) > self.max_length:
                context = self.max_length
                raise UserError(
                    f"sequence {ident!r}: {len(text)} residues, longer than the model context ({context})"
                )
            ids.append(ident)
            texts.append(text)
        if not texts:
            raise UserError("no sequences given")
        return ids, texts
