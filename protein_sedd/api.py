"""The Python API: load a model, then design, score and embed sequences, and save it as a model folder.

    import protein_sedd
    model = protein_sedd.load("acyp-tiny")            # bundled name, run/checkpoint/saved folder, or Hub id
    designs = model.design(10, steps=256, seed=0)     # list of Design records
    scores = model.score([d.sequence for d in designs])   # DataFrame, nats and bits per residue
    vectors = model.embed([d.sequence for d in designs])  # [10, hidden_size]
    model.save_pretrained("my-model")                 # safetensors + config + provenance + model card

`ProteinSEDD.design` and the `design` command build the same request and settings and call one function,
`protein_sedd.design.run.design`, so the same options and seed give the same sequences from the shell and
from Python.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from omegaconf import OmegaConf

from protein_sedd.config.limits import MAX_BATCH_SIZE, MAX_SEED, check_int
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.data.batches import batches_in_order, encode_all
from protein_sedd.data.datasets import sha256_of
from protein_sedd.design.records import Design, Designs
from protein_sedd.diffusion.likelihood import LN2
from protein_sedd.errors import UserError, check_type
from protein_sedd.io.fasta import FastaRecord
from protein_sedd.model.trained import TrainedModel
from protein_sedd.runtime.devices import inference_autocast, select_device
from protein_sedd.runtime.distributed import Distributed

__all__ = ["Design", "Designs", "ProteinSEDD", "load", "load_guide", "train"]

SCORE_COLUMNS = ["id", "sequence", "length", "nats", "bits_per_residue", "standard_error_nats"]


class ProteinSEDD(TrainedModel):
    """A trained SEDD model: its network, config, forward process (graph, noise), length distribution and
    representation (protein_sedd/model/trained.py), with the user's methods."""

    @property
    def name(self) -> str:
        """The run's or folder's name (`runs/acyp-tiny/checkpoint` -> acyp-tiny), safe in a FASTA header."""
        folder = self.path.parent if self.path.name.startswith("checkpoint") else self.path
        name = folder.name
        if folder.parent.name == "snapshots":  # the Hugging Face cache: models--user--repo/snapshots/<hash>
            name = folder.parent.parent.name.removeprefix("models--").replace("--", "/", 1)
        return "_".join(name.split()) or "checkpoint"

    def __repr__(self) -> str:
        parameters = self.network.num_parameters()
        graph = self.config.graph.name
        return f"ProteinSEDD({self.name!r}, {parameters:,} parameters, {graph} graph, on {self.device})"

    # -- design ------------------------------------------------------------------------------------------
    def design(
        self,
        n: int,
        *,
        steps: int = 1024,
        seed: int = 0,
        length: int | None = None,
        length_range: str | None = None,
        lengths: Sequence[int] | None = None,
        template: str | None = None,
        fix: str | Path | None = None,
        redesign: str | None = None,
        batch_size: int = 128,
        predictor: str = "analytic",
        sampler: str = "events",
        temperature: float = 1.0,
        top_p: float = 1.0,
        cache: bool = True,
        precision: str = "auto",
        progress: bool = True,
        ranks: Distributed | None = None,
        guide=None,
        target: float | None = None,
        guide_scale: float = 1.0,
        guidance: str = "taylor",
        target_rate: float | None = None,
    ) -> Designs:
        """Design `n` sequences by `steps`-step tau-leaping from t = 1, then a final denoise; `steps="exact"`:
        one position per event, the exact reverse process (the event sampler only).

        Lengths follow the training length distribution unless given by `length`, `length_range` ('A:B',
        uniform) or `lengths` (one per design). `template` ('MKV__G', '_' designed) or `fix` (a sequence, or a
        FASTA file as a Path) with `redesign` ('10-30,55-60', 1-based) keep residues fixed. The same seed and
        batch size give the same designs on the same device. `ranks` shares the batches among torchrun ranks
        (the command's `--devices`): rank 0 returns every design, the other ranks an empty list. `sampler`:
        'events' (default) visits only the steps where positions unmask, for the analytic predictor of
        time-independent absorbing models (elsewhere the step loop runs); 'steps' always runs the step loop:
        the same distribution, different draws. `temperature` (1.0 = the model) and `top_p` (1.0 = every
        residue) reshape the denoising distribution (absorbing-graph models). `precision`: what the network
        computes in, 'auto' (bf16 on GPUs and on CPUs with AMX or AVX512-BF16, else fp32), 'bf16' or 'fp32';
        the same seed gives other designs in each. `guide` (a guide from `train_guide`/`load_guide`, or its
        folder) steers the designs toward `target` (a class of the guide, or a value): the unmasking rates
        times the guide's likelihood ratios to the power `guide_scale` (protein_sedd/guidance/reweighting.py);
        Taylor-guided designs take the step loop, exactly guided ones the event sampler, and `guide_scale=0`
        gives the unguided designs exactly. `guidance`: how the ratios are computed, 'taylor' (first order,
        one guide forward + backward pass per sequence and step; at scale 1 it steers less than conditioning
        would) or 'exact' (the guide on every one-residue change: in the event sampler 22 guide passes per
        unmasking event; at scale 1 the designs are conditioned on the label as the guide judges it).
        `target_rate` (a classifier guide, instead of `guide_scale`): the smallest scale whose pilot batches
        reach this share of designs the guide calls `target` is chosen (protein_sedd/guidance/target_rate.py);
        the log and the headers say which.
        """
        from protein_sedd.design.request import DesignRequest
        from protein_sedd.design.run import design
        from protein_sedd.design.settings import DesignSettings
        from protein_sedd.guidance.reweighting import Guidance

        if not isinstance(progress, bool):
            raise UserError(f"{{progress}} {progress!r}: must be True or False", field="progress")
        request = DesignRequest(n, length, length_range, template, fix, redesign, lengths)
        settings = DesignSettings(
            steps, seed, batch_size, predictor, sampler, temperature, top_p, cache, precision
        )
        guided = Guidance(guide, target, guide_scale, guidance, target_rate)
        return design(self, request, settings, guided, ranks, progress)

    # -- score and embed ---------------------------------------------------------------------------------
    def score(
        self,
        sequences: Sequence[str] | Sequence[FastaRecord],
        *,
        t_samples: int = 32,
        seed: int = 0,
        batch_size: int = 64,
    ):
        """One row per sequence: `id, sequence, length, nats, bits_per_residue, standard_error_nats`.

        `nats` is an upper bound on -log p(x): the negative ELBO over `t_samples` stratified noise levels,
        plus the length term -log p(L); for the autoregressive baseline, the exact negative log-likelihood,
        with error 0. `standard_error_nats` is the Monte Carlo error of that sequence's estimate: two
        sequences whose nats differ by several errors are ranked reliably. Lower nats = more family-like.
        The same seed and batch size give the same numbers (`evaluate` uses the same estimator).
        """
        import pandas as pd

        check_int("t_samples", t_samples, 1, 10_000)
        check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        check_int("seed", seed, 0, MAX_SEED)
        ids, texts = self.rows(sequences)
        tokens = encode_all(texts)
        total, error = self.nats(tokens, t_samples=t_samples, batch_size=batch_size, seed=seed)
        lengths = torch.tensor([len(t) for t in tokens])
        frame = pd.DataFrame(
            {
                "id": ids,
                "sequence": texts,
                "length": lengths.tolist(),
                "nats": total.tolist(),
                "bits_per_residue": (total / lengths / LN2).tolist(),
                "standard_error_nats": error.tolist(),
            },
            columns=SCORE_COLUMNS,
        )
        return frame

    def evaluate(
        self,
        sequences: Path | Sequence[str] | Sequence[FastaRecord] | None = None,
        *,
        dataset: str | None = None,
        split: str = "test",
        t_samples: int = 32,
        batch_size: int = 64,
        seed: int = 0,
        progress: bool = False,
    ) -> dict:
        """The likelihood report of `protein-sedd evaluate`: -log p(x) per sequence and over the set.

        What is scored: every record of a FASTA file (`sequences` a Path), a list of sequences or records,
        or (None) the `split` ('train', 'valid' or 'test') of `dataset`, by default the model's own
        training data with its split recomputed exactly. The dict holds `nats_per_sequence`,
        `bits_per_residue`, `perplexity_bound`, counts, the length term, the standard error over sequences,
        `exact` (True for model=ar) and `per_sequence` rows (id, length, nats, bits_per_residue,
        standard_error_nats), as `score` computes them. `progress`: a bar on stderr.
        """
        from protein_sedd.evaluation import likelihood_report as likelihood

        likelihood.check_evaluation_settings(sequences, dataset, split, t_samples, batch_size, seed)
        records, source = likelihood.evaluation_records(self, sequences, dataset, split)
        with contextlib.ExitStack() as stack:
            advance = None
            if progress:
                from rich.console import Console

                from protein_sedd.runtime.progress import LoopProgress

                bar = stack.enter_context(LoopProgress(Console(stderr=True), "evaluate", len(records)))
                advance = bar.advance
            report = likelihood.likelihood_report(
                self, records, t_samples=t_samples, batch_size=batch_size, seed=seed, progress=advance
            )
        return {"checkpoint": str(self.path), "source": source, **report}

    def score_variants(
        self,
        wildtype: str | Path,
        mutants,
        method: str = "masked-marginal",
        *,
        t_samples: int = 32,
        seed: int = 0,
        batch_size: int = 64,
        progress=None,
        focus_start: int | None = None,
        allow_differences: bool = False,
    ):
        """Zero-shot variant effects: one row per mutant, `mutant, score` (nats, higher = fitter).

        `wildtype`: the sequence, or a FASTA file as a Path (its first record). `mutants`: a list such as
        ['A23V', 'A23V:G45L'] (1-based positions on the wild type), or a DataFrame with a `mutant` column
        whose other columns (`DMS_score`, ...) are carried through. `method`: 'masked-marginal' (mask the
        mutated positions, sum log p(mutant) - log p(wild type) there: one network pass per distinct set
        of positions, exact for time-independent absorbing models) or 'elbo' (the difference of the
        bounds `score` gives, with `standard_error`; exact for model=ar). `progress`: None, or a callable
        given the number of sequence passes just done. See `protein_sedd.evaluation.variants`;
        `score-variants` calls the same code. The wild type may be the full-length protein: a model trained
        on an alignment scores it on its focus region, found in it (or at residue `focus_start`, ProteinGym's
        MSA_start), variants outside the region unscored (NaN); a FASTA record whose id ends `/24-300` is
        numbered from 24. `allow_differences`: score a strain that differs from the focus in the region
        (protein_sedd.evaluation.wildtype).
        """
        import pandas as pd

        from protein_sedd.evaluation.variants import score_table
        from protein_sedd.evaluation.wildtype import read_wildtype

        given = read_wildtype(wildtype)
        if isinstance(mutants, str):
            raise UserError("give a list of mutants, not one string")
        check_type(
            "mutants", mutants, (pd.DataFrame, pd.Series, list, tuple), "a list of mutants or a DataFrame"
        )
        if mutants is None:
            raise UserError(
                "{mutants}: give a list of mutants such as ['A23V'], or a DataFrame", field="mutants"
            )
        table = mutants if isinstance(mutants, pd.DataFrame) else pd.DataFrame({"mutant": list(mutants)})
        return score_table(
            self, given.sequence, table.reset_index(drop=True), method=method, t_samples=t_samples, seed=seed,
            batch_size=batch_size, where=lambda row: f"mutants[{row}]", progress=progress, first=given.first,
            focus_start=focus_start, allow_differences=allow_differences,
        )  # fmt: skip

    def scan_variants(
        self,
        wildtype: str | Path,
        positions: str | None = None,
        method: str = "masked-marginal",
        *,
        t_samples: int = 32,
        seed: int = 0,
        batch_size: int = 64,
        progress=None,
        focus_start: int | None = None,
        allow_differences: bool = False,
    ):
        """Every single substitution of `positions` ('10-80,95', the wild type's numbering; default: this
        model's focus region in the wild type, else all of it), scored as `score_variants` scores a table:
        columns mutant, score, position, wild_type, residue. `score-variants --scan` calls the same code
        and draws the heatmap (protein_sedd.evaluation.variant_maps: `heatmap_png`, `position_profile`)."""
        from protein_sedd.evaluation.variant_maps import scan_table
        from protein_sedd.evaluation.variants import score_table
        from protein_sedd.evaluation.wildtype import read_wildtype

        given = read_wildtype(wildtype)
        table = scan_table(
            self, given.sequence, first=given.first, positions=positions, focus_start=focus_start,
            allow_differences=allow_differences, where=given.where,
        )  # fmt: skip
        return score_table(
            self, given.sequence, table, method=method, t_samples=t_samples, seed=seed, batch_size=batch_size,
            where=lambda row: f"scan row {row + 1}", progress=progress, first=given.first,
            focus_start=focus_start, allow_differences=allow_differences,
        )  # fmt: skip

    # -- guidance ----------------------------------------------------------------------------------------
    def train_guide(
        self,
        labels,
        *,
        fasta: str | Path | None = None,
        task: str = "auto",
        steps: int = 600,
        batch_size: int = 64,
        lr: float = 2e-3,
        seed: int = 0,
        valid_fraction: float = 0.2,
        on_step: Callable[[], None] | None = None,
    ):
        """A guide p(y | x_t) for `design(guide=...)`, trained on noised labelled sequences (on this model's
        device, under its noise schedule). Save it with `guide.save(folder)`; `load_guide` reads it back.

        `labels`: a CSV path (`sequence,label`, or `id,label` with `fasta`), a DataFrame with those
        columns, or a `Labelled`. `task`: 'auto' (a few whole numbers are classes), 'classify' or
        'regress'. `train-guide` calls the same code; see `protein_sedd.guidance`.
        """
        from protein_sedd.guidance.labels import Labelled, labelled_from
        from protein_sedd.guidance.training import check_guide_settings, train_guide

        check_guide_settings(steps, batch_size, lr, seed, valid_fraction)
        labelled = labels if isinstance(labels, Labelled) else labelled_from(labels, fasta)
        self.representation.check_rows(zip(labelled.where, map(len, labelled.sequences), strict=True))
        return train_guide(
            self, labelled, task, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
            valid_fraction=valid_fraction, device=self.device, on_step=on_step,
        )  # fmt: skip

    @torch.no_grad()
    def embed(
        self,
        sequences: Sequence[str] | Sequence[FastaRecord],
        *,
        pool: str | None = "mean",
        batch_size: int = 64,
    ) -> torch.Tensor | list[torch.Tensor]:
        """The network's last hidden states of the clean sequences (t = 0), on the CPU, float32.

        `pool="mean"`: one vector per sequence, [n, hidden_size] (the mean over its residues);
        `pool=None`: one [length, hidden_size] tensor per sequence. Padding never changes a sequence's states.
        """
        if pool not in ("mean", None):
            raise UserError(f"pool={pool!r}: choose 'mean' or None")
        check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        _, texts = self.rows(sequences)
        tokens = encode_all(texts)
        states: list[torch.Tensor | None] = [None] * len(tokens)
        for index, x, lengths in batches_in_order(tokens, batch_size, ALPHABET.pad_index):
            x, lengths = x.to(self.device), lengths.to(self.device)
            sigma = torch.zeros(len(x), device=self.device)
            with inference_autocast(self.device):
                hidden = self.network.hidden_states(x, sigma, lengths).float().cpu()
            for row, i in enumerate(index):
                states[i] = hidden[row, : int(lengths[row])]
        if pool is None:
            return states
        return torch.stack([s.mean(dim=0) for s in states])

    # -- save --------------------------------------------------------------------------------------------
    def save_pretrained(
        self, folder: str | Path, *, overwrite: bool = False, provenance: dict | None = None
    ) -> Path:
        """Write a model folder: model.safetensors, config.yaml, provenance.json and a README.md model card.

        `protein_sedd.load(folder)` reads it back (identical weights, identical designs); `hf upload USER/REPO
        FOLDER` publishes it on the Hub as is. The folder must be new, empty, or an earlier saved model
        (whose four files are replaced); anything else is refused unless `overwrite` (which replaces only
        these four files, keeping the rest). Never inside a checkpoint or over the model's own folder.
        `provenance` adds records (data, command, evaluations) to provenance.json.
        """
        from protein_sedd.io.atomic import json_safe, write_json_atomic, write_text_atomic
        from protein_sedd.io.outputs import is_checkpoint_dir, refuse_clobbering
        from protein_sedd.io.paths import check_output_path
        from protein_sedd.model.folder import save_model_folder
        from protein_sedd.model.hub import is_saved_model, model_card

        check_type("folder", folder, (str, Path), "a folder (str or Path)")
        check_type("provenance", provenance, dict, "a dict of JSON values")
        extra = provenance or {}
        try:  # before anything is written: a value JSON cannot hold would fail after the weights
            json.dumps(json_safe(extra))  # as provenance.json is written (NaN as null)
        except (TypeError, ValueError) as err:
            raise UserError(
                f"{{provenance}}: {err}; give text, numbers, lists and dicts", field="provenance"
            ) from None
        if any(not isinstance(key, str) for key in extra):
            raise UserError("{provenance}: keys must be text", field="provenance")
        target = Path(folder)
        check_output_path(target, "{folder}", field="folder")
        refuse_clobbering(target, "{folder}", itself=False)  # a saved model may be replaced, not a checkpoint
        if target.resolve() == self.path.resolve():
            raise UserError(f"folder {target}: is the model's own folder; save it somewhere else")
        if target.is_dir() and is_checkpoint_dir(target) and not is_saved_model(target):
            raise UserError(f"folder {target}: holds a training checkpoint; save the model somewhere else")
        if target.exists() and not target.is_dir():
            raise UserError(f"folder {target}: exists and is not a folder")
        if target.is_dir() and any(target.iterdir()) and not is_saved_model(target) and not overwrite:
            raise UserError(
                f"folder {target}: not empty and not a saved protein-sedd model; choose another folder, or "
                "pass overwrite=True to write the model's four files into it (other files stay)"
            )
        provenance = {**self._provenance(), **extra}
        created = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        try:
            save_model_folder(target, self.network, self.config, atomic_files=True)  # replaced file by file
            write_json_atomic(target / "provenance.json", provenance)
            card = model_card(target.resolve().name, self.config, provenance, self.network.num_parameters())
            write_text_atomic(target / "README.md", card)  # last: its front matter marks the folder complete
        except BaseException:
            if created:  # a folder this call made and could not fill (a full disk) is not left behind
                import shutil

                shutil.rmtree(target, ignore_errors=True)
            raise
        return target

    def _provenance(self) -> dict:
        recorded = self.path / "provenance.json"
        if recorded.is_file():
            try:
                provenance = json.loads(recorded.read_text())
            except (OSError, ValueError):
                provenance = {}
        else:
            provenance = {}
        if not isinstance(provenance, dict):
            provenance = {}
        provenance.setdefault("name", self.name)
        weights = self.path / "model.safetensors"
        provenance.setdefault("parent", str(self.path))
        if weights.is_file():
            provenance.setdefault("parent_weights_sha256", sha256_of(weights))
        provenance.setdefault("steps", self.config.get("step"))
        provenance.setdefault("parameters", self.network.num_parameters())
        if self.config.get("init_from") is not None:  # a fine-tuning run: the checkpoint it started from
            provenance.setdefault("init_from", OmegaConf.to_container(self.config.init_from))
        return provenance


def load(
    source: str | Path | None = None, device: str | torch.device = "auto", *, revision: str | None = None
) -> ProteinSEDD:
    """A trained model from a bundled name (`acyp-tiny`, the default), a run directory, a checkpoint
    directory, a saved model folder, or a Hugging Face Hub id (`user/repo`, at `revision`).

    A path that exists here is always read as a path. Hub models come through huggingface_hub's cache;
    offline with nothing cached, the `UserError` names the id and how to fetch it. `device`: auto (CUDA if
    present), cpu, cuda, or a torch.device.
    """
    check_type("source", source, (str, Path), "a bundled name, a folder (str or Path) or a Hub id")
    check_type("revision", revision, str, "a branch, tag or commit (str)")
    dev = device if isinstance(device, torch.device) else select_device(device)
    return ProteinSEDD.load(source, dev, revision)


def train(
    fasta: str | Path | None = None,
    *,
    dataset: str | None = None,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    max_steps: int | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
) -> ProteinSEDD:
    """Train a model as `protein-sedd train` does and return it, loaded from the run's checkpoint.

        model = protein_sedd.train("family.a3m", overrides=["model=small"], out="runs/family", max_steps=2000)

    `fasta` (an unaligned FASTA or an alignment) or `dataset` (a named one, `acyp`); `overrides`: Hydra
    overrides (`["trainer.batch_size=32", "data.representation=focus_columns"]`); `out`: the run directory
    (default runs/<data>-<model>-<timestamp>); `resume` continues the run in `out`; `init_from` fine-tunes
    from a checkpoint, saved folder, Hub id or 'bundled'; `overwrite` starts the run in `out` again
    (removing only a run's files). Ctrl-C saves a checkpoint and raises KeyboardInterrupt.
    """
    from protein_sedd.training.compose import training_config
    from protein_sedd.training.trainer import train as run_training

    if not isinstance(device, str):
        raise UserError(
            f"{{device}}: expected 'auto', 'cpu' or 'cuda', got {type(device).__name__}", field="device"
        )
    cfg, run_dir = training_config(
        dataset=dataset, fasta=fasta, overrides=overrides, out=out, max_steps=max_steps, resume=resume,
        overwrite=overwrite, init_from=init_from,
    )  # fmt: skip
    result = run_training(cfg, run_dir, resume=resume, overwrite=overwrite, device=device)
    if result.interrupted:
        raise KeyboardInterrupt(
            f"training stopped at step {result.step}; resume with resume=True, out={run_dir}"
        )
    return load(run_dir, device)


def load_guide(folder: str | Path, device: str | torch.device = "auto"):
    """A guide saved by `train-guide --out FOLDER` or `Guide.save(FOLDER)`, for `design(guide=...)`."""
    from protein_sedd.guidance.guide import load_guide as load_folder

    check_type("folder", folder, (str, Path), "a guide folder (str or Path)")
    if folder is None:
        raise UserError("{folder}: give the folder train-guide wrote", field="folder")
    return load_folder(folder, device if isinstance(device, torch.device) else select_device(device))
