"""Golden outputs: what the commands and the Python API write for fixed seeds on one CPU thread.

`run_all(work)` runs every scenario in the folder `work` and returns {name: text}: design FASTAs of each kind
of request (free lengths, --length, --length-range, --template, --fix/--redesign) with both samplers, both
predictors, temperature/top-p and the cache off; the same design through the Python API; a guided design;
evaluate's JSON and CSV; `score`; score-variants tables and summaries with both methods; a short training
run's metrics, config, splits and weights (sha256 and per-tensor sums); the AR baseline, the uniform graph, a
time-conditioned network and a focus_columns model of an alignment. Paths under `work` are written as WORK
and those in the installed package as PACKAGE (a clean clone sits elsewhere), and wall-clock columns are
dropped, so the texts are a function of the code alone.

`python -m tests.golden.record` writes them to tests/golden/expected/; tests/test_golden.py compares a fresh
run against those files: byte for byte on the machine kind they were recorded on (see `machine`), and
elsewhere every number within 1e-5 relative + 1e-4 absolute and every other character the same.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

EXPECTED = Path(__file__).resolve().parent / "expected"

WILD_TYPE = "MSTLKRVRFTVSGRVQGVFFRAFTAQEAKKLGLTGWVRNLPDGSVEVVAEGDE"  # an ACYP sequence
FIX = "MAKQTLHFRVTGRVQGVNFRYFTQRLAEEHGLTGWVRNLSDGSVEVVVEGPEEAL"  # an ACYP-like sequence to redesign
# a small alignment: the focus first; lower case = insertions, '-' = deletions (A2M)
ALIGNMENT = [
    ("focus/1-10", "MKVLAGHEWR"),
    ("r2", "MKVLSGHEWR"),
    ("r3", "MRVLAGkHDWR"),
    ("r4", "MKIL-GHEWK"),
    ("r5", "PKVLAGH-WR"),
    ("r6", "MKVDAGHEWR"),
    ("r7", "WKVLAGHCWR"),
    ("r8", "MKVLAYHEWR"),
]
SYNTHETIC = ["MKVLAGHE", "MKVLSGHE", "MRVLAGHD", "MKILAGWE", "PKVLAGHE", "MKVDAGHE", "WKVLAGHC", "MKVLAYHE"]
SYNTHETIC_PROBS = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]

# a model small enough that its weights are quick to train and to hash
MINI = ["model.hidden_size=32", "model.n_layers=2", "model.n_heads=2", "model.cond_dim=16"]
TRAIN = [
    "data.dedupe=false",
    "data.test_fraction=0.1",
    "trainer.batch_size=16",
    "trainer.warmup_steps=2",
    "trainer.val_every=3",
    "trainer.checkpoint_every=3",
    "trainer.log_every=1",
    "trainer.val_sequences=16",
    "trainer.val_t_samples=2",
]
CPU = ["--device", "cpu", "--threads", "1"]
# designs in fp32: bf16's rounding of a product depends on the CPU's kernels (AMX, AVX512-BF16, emulated),
# and a flipped rounding can flip a draw, so fp32 designs are what match across machine kinds
DESIGN = [*CPU, "--precision", "fp32"]
TIMING_COLUMNS = {"tokens_per_s", "elapsed_s", "seconds"}


def machine() -> str:
    """What byte-identical floats depend on: the torch build and the CPU kernels it picks.

    The kernels depend on more than torch's capability level: two AVX512 machines, one with AMX and
    AVX512-FP16, gave float32 sums that differ in the seventh digit. So the CPU's feature flags (hashed) are
    part of the machine kind.
    """
    import torch

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        import platform

        flags = platform.processor()
    digest = hashlib.sha256(" ".join(sorted(flags.split(":")[-1].split())).encode()).hexdigest()[:12]
    return f"torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}, flags {digest}"


def cli(*args) -> None:
    from protein_sedd.cli import main

    code = main([str(a) for a in args])
    if code != 0:
        raise AssertionError(f"protein-sedd {' '.join(map(str, args))}: exit {code}")


class Outputs(dict):
    """name -> text, with the work folder's path written as WORK and the installed package's as PACKAGE."""

    def __init__(self, work: Path):
        super().__init__()
        self.work = work

    def text(self, name: str, text: str) -> None:
        import protein_sedd

        package = Path(protein_sedd.__file__).parent
        roots = {str(self.work): "WORK", str(self.work.resolve()): "WORK"}
        roots |= {str(package): "PACKAGE", str(package.resolve()): "PACKAGE"}
        for root in sorted(roots, key=len, reverse=True):  # a longer path before any path inside it
            text = text.replace(root, roots[root])
        self[name] = text

    def file(self, name: str, path: Path) -> None:
        self.text(name, path.read_text())

    def table(self, name: str, path: Path) -> None:
        """A CSV without its wall-clock columns."""
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        columns = [c for c in (rows[0].keys() if rows else []) if c not in TIMING_COLUMNS]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.text(name, buffer.getvalue())

    def json(self, name: str, path: Path, drop: tuple[str, ...] = ()) -> None:
        record = _drop(json.loads(path.read_text()), set(drop) | TIMING_COLUMNS)
        self.text(name, json.dumps(record, indent=1, sort_keys=True) + "\n")

    def weights(self, name: str, path: Path) -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        record = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "tensors": {
                key: [list(t.shape), float(t.double().sum()), float(t.double().abs().sum())]
                for key, t in sorted(tensors.items())
            },
        }
        self.text(name, json.dumps(record, indent=1) + "\n")


def _drop(value, keys: set[str]):
    if isinstance(value, dict):
        return {k: _drop(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_drop(v, keys) for v in value]
    return value


# -- scenarios ----------------------------------------------------------------------------------------------
def designs(out: Outputs, work: Path) -> None:
    """Every kind of design request from the bundled model, through the command."""
    fix = work / "fix.fasta"
    fix.write_text(f">src some description\n{FIX}\n")
    common = ["design", "--n", 5, "--steps", 40, "--seed", 3, "--batch-size", 2, *DESIGN]
    kinds = {
        "free_events": [],
        "free_steps": ["--sampler", "steps"],
        "free_steps_nocache": ["--sampler", "steps", "--no-cache"],
        "length_controls": ["--length", 30, "--temperature", 0.8, "--top-p", 0.9],
        "length_steps_controls": ["--length", 30, "--temperature", 1.3, "--sampler", "steps"],
        "range_euler": ["--length-range", "20:40", "--predictor", "euler"],
        "template": ["--template", "MKV______GRVQG____FR__"],
        "template_steps": ["--template", "MKV______GRVQG____FR__", "--sampler", "steps"],
        "fix_redesign": ["--fix", fix, "--redesign", "5-15,40-44"],
    }
    for name, extra in kinds.items():
        path = work / f"{name}.fasta"
        cli(*common, "--out", path, *extra)
        out.file(f"design_{name}.fasta", path)


def api(out: Outputs, work: Path) -> None:
    """The Python API: design (which must match the command's file), score, embed."""
    import protein_sedd

    model = protein_sedd.load("acyp-tiny", "cpu")
    made = model.design(5, steps=40, seed=3, batch_size=2, progress=False, precision="fp32")
    out.text("api_design_free_events.fasta", "".join(f">{d.header}\n{d.sequence}\n" for d in made))
    made = model.design(
        3,
        steps=24,
        seed=5,
        lengths=[12, 30, 21],
        sampler="steps",
        top_p=0.8,
        progress=False,
        precision="fp32",
    )
    out.text("api_design_lengths.fasta", "".join(f">{d.header}\n{d.sequence}\n" for d in made))
    made = model.design(4, steps=24, seed=1, fix=FIX, redesign="1-10", progress=False, precision="fp32")
    out.text("api_design_fix.fasta", "".join(f">{d.header}\n{d.sequence}\n" for d in made))
    scores = model.score([WILD_TYPE, FIX, WILD_TYPE[:30]], t_samples=4, seed=2, batch_size=2)
    out.text("api_score.csv", scores.to_csv(index=False, float_format="%.10g"))
    vectors = model.embed([WILD_TYPE, FIX[:20]])
    out.text("api_embed.txt", " ".join(f"{v:.6g}" for v in vectors.sum(dim=1).tolist()) + "\n")


def evaluate(out: Outputs, work: Path) -> None:
    """`evaluate --fasta` of the bundled model (JSON and per-sequence CSV)."""
    fasta = work / "eval.fasta"
    fasta.write_text(f">wt\n{WILD_TYPE}\n>fix\n{FIX}\n>short\n{WILD_TYPE[:25]}\n")
    cli("evaluate", "--checkpoint", "acyp-tiny", "--fasta", fasta, "--json", work / "eval.json",
        "--csv", work / "eval.csv", "--t-samples", 4, "--batch-size", 2, *CPU)  # fmt: skip
    out.json("evaluate.json", work / "eval.json")
    out.table("evaluate.csv", work / "eval.csv")


def variants(out: Outputs, work: Path) -> None:
    """score-variants with both methods, with a DMS_score column (Spearman in the summary)."""
    wildtype = work / "wt.fasta"
    wildtype.write_text(f">wt\n{WILD_TYPE}\n")
    rng = random.Random(7)
    rows = ["mutant,DMS_score"]
    for i in range(24):
        position = rng.randrange(len(WILD_TYPE))
        new = rng.choice([a for a in "ACDEFGHIKLMNPQRSTVWY" if a != WILD_TYPE[position]])
        mutant = f"{WILD_TYPE[position]}{position + 1}{new}"
        if i % 5 == 4:  # a few doubles
            other = (position + 7) % len(WILD_TYPE)
            mutant += f":{WILD_TYPE[other]}{other + 1}A" if WILD_TYPE[other] != "A" else ""
        rows.append(f"{mutant},{rng.gauss(0, 1):.4f}")
    table = work / "variants.csv"
    table.write_text("\n".join(rows) + "\n")
    for method, extra in {"masked-marginal": [], "elbo": ["--t-samples", 3]}.items():
        scores = work / f"scores-{method}.csv"
        cli("score-variants", "--wildtype", wildtype, "--variants", table, "--out", scores,
            "--method", method, "--batch-size", 8, *extra, *CPU)  # fmt: skip
        out.file(f"variants_{method}.csv", scores)
        # "files": the figures' digests, which follow matplotlib's and the fonts' versions, not ours
        out.json(f"variants_{method}.summary.json", work / f"scores-{method}.summary.json", drop=("files",))


def _synthetic_fasta(path: Path, n: int = 300) -> Path:
    rng = random.Random(0)
    draws = rng.choices(SYNTHETIC, SYNTHETIC_PROBS, k=n)
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(draws)))
    return path


def _run_outputs(out: Outputs, prefix: str, run: Path) -> None:
    out.table(f"{prefix}_metrics.csv", run / "metrics.csv")
    out.file(f"{prefix}_config.yaml", run / "checkpoint" / "config.yaml")
    out.json(f"{prefix}_splits.json", run / "splits.json")
    out.weights(f"{prefix}_weights.json", run / "checkpoint" / "model.safetensors")


def training(out: Outputs, work: Path) -> None:
    """Short training runs: the default SEDD, the AR baseline, the uniform graph, a time-conditioned network,
    a resume; designs, evaluate and scores of the non-default ones."""
    fasta = _synthetic_fasta(work / "synthetic.fa")
    base = ["train", "--fasta", fasta, "--max-steps", 6, *CPU, *TRAIN, *MINI]
    kinds = {
        "sedd": [],
        "ar": ["model=ar", *MINI],
        "uniform": ["graph=uniform", "model.time_conditioning=true"],
        "timecond": ["model.time_conditioning=true", "noise=geometric"],
    }
    for name, extra in kinds.items():
        run = work / f"run-{name}"
        cli(*base, "--out", run, *extra)
        _run_outputs(out, f"train_{name}", run)
        cli("evaluate", "--checkpoint", run, "--json", work / f"{name}.json", "--t-samples", 2, *CPU)
        out.json(f"train_{name}_evaluate.json", work / f"{name}.json")
        if name != "ar":
            path = work / f"{name}.fasta"
            cli("design", "--checkpoint", run, "--n", 4, "--steps", 16, "--seed", 2, "--out", path, *DESIGN)
            out.file(f"train_{name}_design.fasta", path)
    resumed = work / "run-resumed"
    cli("train", "--fasta", fasta, "--max-steps", 3, "--out", resumed, *CPU, *TRAIN, *MINI)
    cli("train", "--max-steps", 6, "--out", resumed, "--resume", *CPU)
    out.weights("train_resumed_weights.json", resumed / "checkpoint" / "model.safetensors")


def guided(out: Outputs, work: Path) -> None:
    """train-guide on labelled sequences, then a guided design with it (and at scale 0)."""
    rng = random.Random(0)
    rows = ["sequence,label"]
    for i in range(40):
        sequence = "".join(rng.choice("ACDEFGHIKLMNPQRSTVY") for _ in range(30))
        if i % 2:
            sequence = sequence[:10] + "WCW" + sequence[13:]
        rows.append(f"{sequence},{i % 2}")
    labels = work / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    guide = work / "guide"
    cli("train-guide", "--labels", labels, "--out", guide, "--steps", 12, "--batch-size", 8, *CPU)
    out.json("guide.json", guide / "guide.json")
    out.weights("guide_weights.json", guide / "guide.safetensors")
    for scale in (2, 0):
        path = work / f"guided-{scale}.fasta"
        cli("design", "--guide", guide, "--target", 1, "--guide-scale", scale, "--n", 3, "--steps", 16,
            "--length", 30, "--seed", 4, "--out", path, *DESIGN)  # fmt: skip
        out.file(f"design_guided_scale{scale}.fasta", path)


def focus_columns(out: Outputs, work: Path) -> None:
    """A focus_columns model of an alignment: training, designs, scores and variant effects."""
    alignment = work / "family.a2m"
    copies = [(copy, name, row) for copy in range(20) for name, row in ALIGNMENT]
    rows = [(name if copy == 0 else f"{name.split('/')[0]}_{copy}", row) for copy, name, row in copies]
    alignment.write_text("".join(f">{name}\n{row}\n" for name, row in rows))
    run = work / "run-columns"
    cli("train", "--fasta", alignment, "--out", run, "--max-steps", 6, *CPU, *TRAIN, *MINI,
        "data.representation=focus_columns", "model.max_length=12")  # fmt: skip
    _run_outputs(out, "columns", run)
    path = work / "columns.fasta"
    cli("design", "--checkpoint", run, "--n", 4, "--steps", 16, "--seed", 2, "--out", path, *DESIGN)
    out.file("columns_design.fasta", path)
    wildtype = work / "focus.fasta"
    wildtype.write_text(">focus\nMKVLAGHEWR\n")
    table = work / "columns-variants.csv"
    table.write_text("mutant,DMS_score\nM1A,0.1\nK2R,-0.3\nL4A:G6W,1.2\nW9F,0.4\nR10K,-1.0\nE8D,0.0\n")
    scores = work / "columns-scores.csv"
    cli("score-variants", "--checkpoint", run, "--wildtype", wildtype, "--variants", table, "--out", scores,
        *CPU)  # fmt: skip
    out.file("columns_variants.csv", scores)
    out.json("columns_variants.summary.json", work / "columns-scores.summary.json", drop=("files",))


SCENARIOS: dict[str, Callable[[Outputs, Path], None]] = {
    "designs": designs,
    "api": api,
    "evaluate": evaluate,
    "variants": variants,
    "training": training,
    "guided": guided,
    "focus_columns": focus_columns,
}


def run_all(work: Path) -> dict[str, str]:
    """Every scenario's outputs (each scenario in its own subfolder of `work`)."""
    import torch

    os.environ.setdefault("COLUMNS", "120")
    torch.set_num_threads(1)
    out = Outputs(work)
    for name, scenario in SCENARIOS.items():
        folder = work / name
        folder.mkdir(parents=True)
        out.work = folder
        scenario(out, folder)
    return dict(out)
