"""The report's sections: one class each, in page order, registered in `SECTIONS`.

A section says which campaign parts it is drawn from (`needs`: any one of them), what would fill it when
none was given (`missing`), and builds its blocks from the parts (`blocks`). A block is a small record the
page template draws by its `kind` (`Figure`, `Rates`, `Facts`, `Note`, `Structures`, `Picks`), so a new
section is a class here and a new picture kind is a block and one macro, never a branch in the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protein_sedd.campaign import figures
from protein_sedd.campaign.parts import Campaign
from protein_sedd.errors import UserError
from protein_sedd.evaluation.reports import histogram_figure
from protein_sedd.model.networks import describe


# -- blocks ---------------------------------------------------------------------------------------------
@dataclass
class Figure:
    caption: str
    uri: str
    name: str  # a stable id for the figure (tests and links find it by this)
    kind: str = "figure"


@dataclass
class Rates:
    """Yes/no rates with their 95% intervals: rows of (label, designs' rate, naturals' rate or None)."""

    rows: list[tuple[str, str, str | None]]
    kind: str = "rates"


@dataclass
class Facts:
    rows: list[tuple[str, str]]
    kind: str = "facts"


@dataclass
class Note:
    text: str
    warning: bool = False
    kind: str = "note"


@dataclass
class Structures:
    """Structures for the embedded viewer: [{id, ca: [[x, y, z]], plddt: [...], mean, image}]."""

    models: list[dict]
    kind: str = "structures"


@dataclass
class Picks:
    columns: list[str]
    rows: list[list]  # cell values in column order (numbers stay numbers: the table sorts them as numbers)
    fasta: str
    kind: str = "picks"


def format_rate(value: dict | None) -> str | None:
    if not isinstance(value, dict):
        return None
    low, high = value["ci95"]
    return f"{100 * value['rate']:.1f}% [{100 * low:.1f}, {100 * high:.1f}] ({value['count']}/{value['n']})"


# -- sections -------------------------------------------------------------------------------------------
@dataclass
class Section:
    key: str = ""
    title: str = ""
    needs: tuple[str, ...] = ()
    missing: str = ""

    def present(self, campaign: Campaign) -> bool:
        return any(getattr(campaign, part) is not None for part in self.needs)

    def blocks(self, campaign: Campaign) -> list:
        raise NotImplementedError


class Training(Section):
    def __init__(self):
        super().__init__(
            "training",
            "Training",
            ("run",),
            "Pass --run RUN (a folder `protein-sedd train` wrote) to show the loss curves and data.",
        )

    def blocks(self, campaign: Campaign) -> list:
        run = campaign.run
        config, metrics = run.config, run.metrics
        dataset = config.get("dataset") or {}
        model = config["model"]
        parameters = run.model.network.num_parameters()
        last = metrics.iloc[-1]
        valid = metrics[np.isfinite(metrics.get("valid_bits_per_residue", np.nan))]
        facts = [
            ("dataset", f"{dataset.get('name') or '-'}: {dataset.get('source')}"),
            ("dataset sha256", str(dataset.get("sha256"))),
            (
                "records / train / valid / test",
                f"{dataset.get('n_records')} / {dataset.get('n_train')} / "
                f"{dataset.get('n_valid')} / {dataset.get('n_test')}",
            ),
            (
                "duplicates removed / fragments dropped",
                f"{dataset.get('n_duplicates_removed', 0)} / {dataset.get('n_fragments_filtered', 0)}",
            ),
            ("weights / Neff", f"{dataset.get('weights')} / {dataset.get('neff', '-')}"),
            ("representation", str((config.get("data") or {}).get("representation", "sequence"))),
            (
                "model",
                f"{describe(model)}, {parameters:,} parameters",
            ),
            ("steps / time", f"{int(last['step']):,} steps in {last['elapsed_s']:.0f} s"),
            ("last training loss", f"{last['train_loss']:.4g}"),
        ]
        if len(valid):
            best = valid.loc[valid["valid_bits_per_residue"].idxmin()]
            facts.append(
                (
                    "best validation bound",
                    f"{best['valid_bits_per_residue']:.4g} bits/residue at step {int(best['step']):,}",
                )
            )
        return [
            Facts(facts),
            Figure(
                "Training loss (score entropy per token) and the validation bound "
                "(bits/residue) against steps; the learning rate.",
                figures.data_uri(figures.training(metrics)),
                "training-curves",
            ),
        ]


class Family(Section):
    def __init__(self):
        super().__init__(
            "family",
            "Designs against the family",
            ("seq_eval", "designs"),
            "Pass --designs FASTA and --seq-eval FOLDER (`protein-sedd seq-eval`) to compare the "
            "designs with the family.",
        )

    def blocks(self, campaign: Campaign) -> list:
        blocks: list = []
        seq = campaign.seq_eval
        lengths = (
            seq.results["length"].astype(int).tolist()
            if seq is not None
            else [len(r.sequence) for r in campaign.designs]
        )
        if seq is None:
            blocks.append(
                Note("Family scores need --seq-eval FOLDER (`protein-sedd seq-eval` of these designs).")
            )
        else:
            summary, naturals = seq.summary, seq.summary.get("natural_baseline") or {}
            blocks.append(
                Rates(
                    [
                        (
                            f"family HMM pass (>= {summary['family_pass_bits']:g} bits)",
                            format_rate(summary["family_pass"]),
                            format_rate(naturals.get("family_pass")),
                        ),
                        ("unique sequences", format_rate(summary["unique"]), None),
                        ("exact copies of a reference", format_rate(summary["exact_copy"]), None),
                        (
                            "low complexity",
                            format_rate(summary["low_complexity"]),
                            format_rate(naturals.get("low_complexity")),
                        ),
                    ]
                )
            )
            blocks.append(
                Facts(
                    [
                        ("designs / reference sequences", f"{len(seq.results)} / {summary['n_reference']:,}"),
                        (
                            "median family bits (naturals)",
                            f"{summary.get('family_bits_median', math.nan):.1f} "
                            f"({naturals.get('family_bits_median', math.nan):.1f})",
                        ),
                        (
                            "nearest-natural identity, median / max",
                            f"{summary.get('nearest_identity_median', math.nan):.3f}"
                            f" / {summary.get('nearest_identity_max', math.nan):.3f}",
                        ),
                        ("mean pairwise identity (diversity)", f"{summary['mean_pairwise_identity']:.3f}"),
                        (
                            "composition divergence (JS, bits)",
                            f"{summary.get('composition_js_bits', math.nan):.4f}",
                        ),
                    ]
                )
            )
            natural_bits = seq.naturals["family_bits"].tolist() if seq.naturals is not None else None
            caption = "Family HMM score of the designs"
            caption += (
                " and of held-out naturals of the same lengths."
                if natural_bits is not None
                else "; the naturals need natural_baseline.csv in the seq-eval folder (rerun seq-eval)."
            )
            blocks.append(
                Figure(
                    caption,
                    figures.data_uri(
                        figures.bits(
                            seq.results["family_bits"].tolist(), natural_bits, summary["family_pass_bits"]
                        )
                    ),
                    "family-bits",
                )
            )
            blocks.append(
                Figure(
                    "Identity of each design to its nearest natural (over the shorter sequence).",
                    figures.data_uri(
                        histogram_figure(
                            seq.results["nearest_identity"].tolist(),
                            title="Identity to the nearest natural",
                            xlabel="nearest-natural identity",
                            value_range=(0.0, 1.0),
                            bins=40,
                            **figures.HALF_WIDTH,
                        )
                    ),
                    "nearest-identity",
                )
            )
            if isinstance(summary.get("composition"), dict):
                blocks.append(
                    Figure(
                        "Residue composition of designs and reference.",
                        figures.data_uri(figures.composition(summary["composition"])),
                        "composition",
                    )
                )
        reference, stats, label = self._lengths(campaign)
        blocks.append(
            Figure(
                f"Design lengths against {label}.",
                figures.data_uri(figures.lengths(lengths, reference, stats, label)),
                "lengths",
            )
        )
        return blocks

    @staticmethod
    def _lengths(campaign: Campaign) -> tuple[dict[int, float], dict | None, str]:
        """(the training length histogram, or {}; the reference's length statistics, or None; a label)."""
        run = campaign.run
        histogram = ((run.config.get("lengths") or {}).get("histogram") if run is not None else None) or []
        if histogram:
            return {int(n): float(c) for n, c in histogram}, None, "the training lengths (the model's prior)"
        stats = ((campaign.seq_eval.summary.get("lengths") or {}) if campaign.seq_eval else {}).get(
            "reference"
        )
        if isinstance(stats, dict) and all(
            isinstance(stats.get(k), (int, float)) for k in ("median", "min", "max")
        ):
            return {}, stats, "the reference's median and range (pass --run for the training lengths)"
        return {}, None, "nothing (pass --run for the training lengths)"


class Differences(Section):
    MIN_OCCUPANCY = 0.3  # HMM columns where at least this share of naturals has a residue are drawn

    def __init__(self):
        super().__init__(
            "differences",
            "Where the designs differ",
            ("seq_eval",),
            "Pass --seq-eval FOLDER to draw sequence logos and a map of designs among naturals.",
        )

    def blocks(self, campaign: Campaign) -> list:
        seq = campaign.seq_eval
        if seq.naturals is None or seq.naturals.empty:
            return [
                Note(
                    "This seq-eval folder has no natural_baseline.csv (it predates it, or every reference "
                    "built the family HMM): rerun `protein-sedd seq-eval` to draw logos and the map."
                )
            ]
        designs = seq.results["sequence"].tolist()
        naturals = seq.naturals["sequence"].tolist()
        blocks: list = []
        hmm = self._hmm(seq)
        if hmm is None:
            blocks.append(
                Note(
                    f"The family HMM of {seq.summary.get('reference')} is not cached here and the "
                    "reference is gone: the logos need it (rerun seq-eval with the reference)."
                )
            )
        else:
            blocks.append(self._logos(hmm, designs, naturals))
        blocks.append(self._map(campaign, designs, naturals))
        return blocks

    @staticmethod
    def _hmm(seq):
        from protein_sedd.evaluation import family_hmm
        from protein_sedd.io.fasta import read_fasta

        summary = seq.summary
        reference = Path(str(summary.get("reference")))
        size = int(summary.get("hmm_sample_size") or family_hmm.HMM_SAMPLE_SIZE)
        found = family_hmm.cached_family_hmm(reference, str(summary.get("reference_sha256")), size)
        if found is not None:
            return found[0]
        if not reference.is_file():
            return None
        from protein_sedd.data.datasets import sha256_of

        if sha256_of(reference) != summary.get("reference_sha256"):
            raise UserError(
                f"{reference}: changed since seq-eval scored {seq.path} (another sha256); rerun seq-eval"
            )
        sequences = [r.sequence for r in read_fasta(reference, unique_ids=False)]
        return family_hmm.load_or_build_family_hmm(reference, summary["reference_sha256"], sequences, size)[0]

    def _logos(self, hmm, designs: list[str], naturals: list[str]) -> Figure:
        design_counts = match_counts(hmm, designs)
        natural_counts = match_counts(hmm, naturals)
        occupancy = natural_counts.sum(axis=1) / max(len(naturals), 1)
        columns = np.nonzero(occupancy >= self.MIN_OCCUPANCY)[0]
        figure = figures.logos(design_counts[columns], natural_counts[columns], (columns + 1).tolist())
        return Figure(
            f"Sequence logos (information, bits) of {len(designs)} designs and {len(naturals)} held-out "
            f"naturals aligned to the family HMM ({hmm.M} match columns; the {len(columns)} where at least "
            f"{self.MIN_OCCUPANCY:.0%} of naturals have a residue, numbered by HMM column).",
            figures.data_uri(figure),
            "logos",
        )

    @staticmethod
    def _map(campaign: Campaign, designs: list[str], naturals: list[str]) -> Figure:
        seq = campaign.seq_eval
        sequences = designs + naturals
        what = None
        if campaign.run is not None:
            try:
                vectors = campaign.run.model.embed(sequences).numpy().astype(np.float64)
                what = f"the model's mean hidden states ({vectors.shape[1]} dimensions)"
            except UserError:
                what = None  # e.g. naturals longer than the model's maximum: fall back to k-mers
        if what is None:
            vectors = kmer_profiles(sequences)
            what = "2-mer profiles (400 dimensions)" + (
                "" if campaign.run is None else ": the model could not embed every sequence"
            )
        points = principal_components(vectors, 2)
        is_design = np.arange(len(sequences)) < len(designs)
        bits = np.concatenate(
            [seq.results["family_bits"].to_numpy(float), seq.naturals["family_bits"].to_numpy(float)]
        )
        figure = figures.sequence_map(points, is_design, bits, what)
        return Figure(
            f"Designs among held-out naturals: PCA of {what}, coloured by family HMM bits.",
            figures.data_uri(figure),
            "sequence-map",
        )


class Structure(Section):
    SHOWN = 6

    def __init__(self):
        super().__init__(
            "structure",
            "Structure",
            ("fold_eval",),
            "Pass --fold-eval FOLDER (`protein-sedd fold-eval`) for pLDDT and the predicted structures.",
        )

    def blocks(self, campaign: Campaign) -> list:
        fold = campaign.fold_eval
        blocks: list = []
        if fold.toy:
            blocks.append(
                Note(
                    "Plumbing check only: these structures come from a toy random-weight ESMFold; "
                    "their pLDDT says nothing about the designs.",
                    True,
                )
            )
        threshold = float(fold.summary["threshold"])
        blocks.append(Rates([(f"mean pLDDT >= {threshold:g}", format_rate(fold.summary["success"]), None)]))
        blocks.append(
            Figure(
                f"Mean pLDDT of {len(fold.results)} designs; the threshold at {threshold:g}.",
                figures.data_uri(
                    histogram_figure(
                        fold.results["mean_plddt"].tolist(),
                        title="Mean pLDDT",
                        xlabel="mean pLDDT",
                        threshold=threshold,
                        threshold_label=f"threshold {threshold:g}",
                        value_range=(0.0, 100.0),
                        bins=40,
                        **figures.HALF_WIDTH,
                    )
                ),
                "plddt",
            )
        )
        chosen = self._chosen(campaign)
        models = []
        for design in chosen:
            ca, plddt = read_ca_trace(fold.structures[design])
            models.append(
                {
                    "id": design,
                    "ca": np.round(ca, 2).tolist(),
                    "plddt": np.round(plddt, 1).tolist(),
                    "mean": round(float(plddt.mean()), 1),
                    "image": figures.data_uri(
                        figures.structure(ca, plddt, f"{design} (pLDDT {plddt.mean():.1f})")
                    ),
                }
            )
        if models:
            which = (
                "the picks" if campaign.selection is not None else "the designs with the highest mean pLDDT"
            )
            curves = {m["id"]: np.asarray(m["plddt"]) for m in models}
            blocks.append(
                Figure(
                    f"Per-residue pLDDT of {which} (up to {self.SHOWN}).",
                    figures.data_uri(figures.residue_plddt(curves, threshold)),
                    "residue-plddt",
                )
            )
            blocks.append(Structures(models))
        else:
            blocks.append(Note("No PDB file of these designs is in the fold-eval folder."))
        return blocks

    def _chosen(self, campaign: Campaign) -> list[str]:
        fold = campaign.fold_eval
        if campaign.selection is not None:
            picks = campaign.selection.picks
            ranked = picks[picks["picked"]].sort_values("rank")["id"].tolist()
        else:
            ranked = fold.results.sort_values("mean_plddt", ascending=False)["id"].tolist()
        return [d for d in ranked if d in fold.structures][: self.SHOWN]


class Plate(Section):
    COLUMNS = ["rank", "id", "length", "family_bits", "nearest_identity", "mean_plddt", "flags", "sequence"]

    def __init__(self):
        super().__init__(
            "plate",
            "The plate",
            ("selection",),
            "Pass --select FOLDER (`protein-sedd select`) for the funnel and the picks.",
        )

    def blocks(self, campaign: Campaign) -> list:
        from protein_sedd.evaluation.selection_report import funnel_figure

        selection = campaign.selection
        funnel = [(s["stage"], s["left"]) for s in selection.summary["funnel"]]
        picks = selection.picks[selection.picks["picked"]].sort_values("rank")
        plddt = {}
        if "mean_plddt" in picks:
            plddt = dict(zip(picks["id"], picks["mean_plddt"], strict=True))
        elif campaign.fold_eval is not None:
            plddt = dict(
                zip(campaign.fold_eval.results["id"], campaign.fold_eval.results["mean_plddt"], strict=True)
            )
        rows = []
        for _, row in picks.iterrows():
            flags = [name for name in ("low_complexity",) if bool(row.get(name, False))]
            rows.append(
                [
                    int(row["rank"]),
                    row["id"],
                    int(row["length"]),
                    _number(row.get("family_bits")),
                    _number(row.get("nearest_identity")),
                    _number(plddt.get(row["id"])),
                    ", ".join(flags) or "-",
                    row["sequence"],
                ]
            )
        blocks: list = [
            Figure(
                f"Designs left after each of select's steps (ranked by {selection.summary.get('rank_by')}).",
                figures.data_uri(funnel_figure(funnel)),
                "funnel",
            )
        ]
        if selection.summary.get("note") or (campaign.fold_eval is not None and campaign.fold_eval.toy):
            blocks.append(
                Note(
                    "The pLDDT column comes from a toy random-weight ESMFold (a plumbing check): it "
                    "says nothing about the picks.",
                    True,
                )
            )
        blocks.append(Picks(self.COLUMNS, rows, selection.fasta))
        return blocks


class VariantEffects(Section):
    def __init__(self):
        super().__init__(
            "variants",
            "Variants",
            ("variants",),
            "Pass --variants SCORES.csv (`protein-sedd score-variants`, e.g. with --scan) for the "
            "mutation map.",
        )

    def blocks(self, campaign: Campaign) -> list:
        from protein_sedd.evaluation import variant_maps

        variants = campaign.variants
        summary, scores = variants.summary, variants.scores
        wildtype = summary.get("wildtype") or {}
        title = f"{wildtype.get('id')}: {summary.get('method')}"
        blocks: list = [
            Facts(
                [
                    ("wild type", f"{wildtype.get('id')} ({wildtype.get('length')} residues)"),
                    ("variants scored", f"{int(np.isfinite(scores['score']).sum())} of {len(scores)}"),
                    ("method", str(summary.get("method"))),
                    ("model", str(summary.get("checkpoint"))),
                ]
            )
        ]
        try:
            profile = variant_maps.position_profile(scores)
        except UserError:
            profile = None
        if profile is not None:
            blocks.append(
                Figure(
                    "Every scored single substitution: residues x positions, coloured by score "
                    "(nats against the wild type; red worse, blue better), the wild type dotted, "
                    "the mean over substitutions above each block.",
                    figures.data_uri(variant_maps.heatmap_figure(scores, title)),
                    "heatmap",
                )
            )
            blocks.append(
                Figure(
                    f"Tolerance profile: substitutions per position scoring above "
                    f"{variant_maps.TOLERATED:g} nats (as likely as the wild type, nearly).",
                    figures.data_uri(figures.tolerance(profile)),
                    "tolerance",
                )
            )
        else:
            blocks.append(Note("No single substitution was scored: the heatmap needs single mutants."))
        correlation = summary.get("spearman_vs_DMS_score")
        if "DMS_score" in scores and isinstance(correlation, dict):
            scored = np.isfinite(scores["score"]) & np.isfinite(scores["DMS_score"])
            figure = variant_maps.scatter_figure(
                scores["score"][scored].to_numpy(),
                scores["DMS_score"][scored].to_numpy(),
                correlation["rho"],
                title,
            )
            blocks.append(
                Figure(
                    f"Predicted against measured: Spearman rho {correlation['rho']:.3f} "
                    f"[{correlation['low']:.3f}, {correlation['high']:.3f}].",
                    figures.data_uri(figure),
                    "scatter",
                )
            )
        return blocks


SECTIONS: list[type[Section]] = [Training, Family, Differences, Structure, Plate, VariantEffects]


# -- the computations behind the pictures ---------------------------------------------------------------
def match_counts(hmm, sequences: list[str]) -> np.ndarray:
    """Residue counts [HMM match columns, 20] of `sequences` aligned to `hmm` (hmmalign; inserts dropped)."""
    import pyhmmer
    from pyhmmer.easel import DigitalSequenceBlock, TextSequence

    from protein_sedd.data.alphabet import AMINO_ACIDS

    index = {r: i for i, r in enumerate(AMINO_ACIDS[:20])}
    counts = np.zeros((hmm.M, 20))
    block = DigitalSequenceBlock(
        hmm.alphabet,
        (
            TextSequence(name=str(i).encode(), sequence=s).digitize(hmm.alphabet)
            for i, s in enumerate(sequences)
        ),
    )
    alignment = pyhmmer.hmmer.hmmalign(hmm, block, all_consensus_cols=True)
    for row in alignment.alignment:
        columns = [c for c in row if c.isupper() or c == "-"]  # match states only
        for column, residue in enumerate(columns[: hmm.M]):
            if residue in index:
                counts[column, index[residue]] += 1
    return counts


def kmer_profiles(sequences: list[str], k: int = 2) -> np.ndarray:
    """Each sequence's k-mer frequencies over the 20 residues (20^k columns; k-mers with X skipped)."""
    from protein_sedd.data.alphabet import AMINO_ACIDS

    index = {r: i for i, r in enumerate(AMINO_ACIDS[:20])}
    vectors = np.zeros((len(sequences), 20**k))
    for row, sequence in enumerate(sequences):
        codes = [index.get(r, -1) for r in sequence]
        for start in range(len(codes) - k + 1):
            window = codes[start : start + k]
            if min(window) >= 0:
                vectors[row, sum(c * 20**i for i, c in enumerate(reversed(window)))] += 1
        vectors[row] /= max(vectors[row].sum(), 1.0)
    return vectors


def principal_components(vectors: np.ndarray, n: int = 2) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    points = centred @ components[:n].T
    if points.shape[1] < n:
        points = np.pad(points, ((0, 0), (0, n - points.shape[1])))
    return points


def read_ca_trace(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(C-alpha coordinates [L, 3], per-residue pLDDT [L]) of a fold-eval PDB (pLDDT is the B-factor)."""
    ca, plddt = [], []
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        raise UserError(f"{path}: unreadable PDB file") from None
    for number, line in enumerate(lines, 1):
        if line.startswith("ATOM") and line[12:16].strip() == "CA":
            try:
                ca.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
                plddt.append(float(line[60:66]))
            except ValueError:
                raise UserError(f"{path} line {number}: damaged ATOM record") from None
    values = np.asarray(plddt)
    if not ca or not np.isfinite(np.asarray(ca)).all() or not ((values >= 0) & (values <= 100)).all():
        raise UserError(f"{path}: damaged PDB (no C-alpha atoms, or pLDDT outside 0-100)")
    return np.asarray(ca), values


def _number(value):
    if value is None:
        return None
    number = float(value)
    return None if not math.isfinite(number) else round(number, 3)
