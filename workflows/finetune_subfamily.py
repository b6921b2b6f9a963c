"""Fine-tuning on a real subfamily: the bundled ACYP model as is, fine-tuned, and trained from scratch.

    python workflows/finetune_subfamily.py --out runs/finetune-subfamily            # 200 steps each
    python workflows/finetune_subfamily.py --out DIR --steps 400 --anchor ID --threads 1
    python workflows/finetune_subfamily.py --out DIR --selection balanced   # 4 relatives per held-out one

What it does (issue 12): split ACYP exactly as the bundled model was trained (its config's data section;
the file's sha256 must match the recorded one), pick one sequence of the test split (`--anchor`, or one
drawn with `--seed`), hold out the 60 test-split sequences nearest to it by identity (itself included),
and take the 240 training-split sequences nearest to those (each ranked by its identity to the nearest
held-out sequence; 3-mer prefilter then alignment, `protein_sedd.evaluation.sequence_metrics`). ACYP holds
dense clusters of near-identical sequences, so this literal reading may pick relatives of only a few of the
60 (`summary.json` says how many); `--selection balanced` takes each held-out sequence's nearest training
sequences in turn instead (4 each), so that the 240 cover the whole subfamily. Then:

- the bundled model's held-out bound as is;
- `train --init-from bundled trainer=finetune` on the 240 for `--steps` steps (no early stopping: every
  sequence trains, none is held out for validation);
- `train` from scratch on the same 240 for the same steps (the default trainer, with the fine-tune's
  20-step warm-up so that the short budget is not spent warming up);

each scored on the 60 with `evaluate --fasta` (same seed and --t-samples). Every step is the project's own
command line, printed as it runs; `summary.json` holds the numbers and the commands.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from command_steps import step as run  # workflows/: on the path when a workflow runs

N_HELD_OUT, N_FINETUNE = 60, 240


def bundled_splits():
    """ACYP split exactly as the bundled model's training split it (checked by the file's sha256)."""
    from protein_sedd.data.prepare import prepare_splits, recorded_data_config
    from protein_sedd.model.folder import load_config
    from protein_sedd.model.sources import DEFAULT_MODEL, resolve_checkpoint_dir

    config = load_config(resolve_checkpoint_dir(DEFAULT_MODEL))
    prepared = prepare_splits(recorded_data_config(config), int(config.model.max_length))
    if prepared.sha256 != config.dataset.sha256:
        sys.exit(f"{prepared.source}: not the ACYP file the bundled model was trained on (sha256 differs)")
    if len(prepared.splits.train) != config.dataset.n_train:
        sys.exit("the ACYP split differs from the bundled model's; is this the same protein-sedd version?")
    return prepared.splits


def balanced_relatives(train: list[str], held_out: list[str], n: int, candidates: int = 40) -> list[int]:
    """`n` training indices: each held-out sequence's nearest in turn (every one's best, then second...)."""
    from protein_sedd.evaluation.sequence_metrics import KmerIndex, identity

    index = KmerIndex(train)
    ranked = []
    for sequence in held_out:
        found = [(identity(sequence, train[j]), int(j)) for j in index.candidates(sequence, candidates)]
        ranked.append([j for _, j in sorted(found, key=lambda pair: (-pair[0], pair[1]))])
    chosen: list[int] = []
    for rank in range(candidates):
        for relatives in ranked:
            if rank < len(relatives) and relatives[rank] not in chosen and len(chosen) < n:
                chosen.append(relatives[rank])
    return chosen


def choose_subfamily(splits, anchor_id: str | None, seed: int, selection: str) -> tuple[list, list, dict]:
    """The 60 held-out test sequences nearest the anchor and the 240 training sequences nearest to them."""
    from protein_sedd.evaluation.sequence_metrics import identity, nearest_references

    test = splits.test
    if anchor_id is None:
        anchor = random.Random(seed).choice(test)
    else:
        matches = [r for r in test if r.id == anchor_id]
        if not matches:
            sys.exit(f"--anchor {anchor_id}: not in the bundled model's test split")
        anchor = matches[0]
    to_anchor = [identity(anchor.sequence, r.sequence) for r in test]
    order = sorted(range(len(test)), key=lambda i: (-to_anchor[i], i))[:N_HELD_OUT]
    held_out = [test[i] for i in order]
    train, held = [r.sequence for r in splits.train], [r.sequence for r in held_out]
    if selection == "balanced":
        chosen = balanced_relatives(train, held, N_FINETUNE)
    else:
        nearest = nearest_references(train, held)
        chosen = sorted(range(len(train)), key=lambda i: (-nearest[i].identity, i))[:N_FINETUNE]
    finetune = [splits.train[i] for i in chosen]
    relatives = nearest_references([r.sequence for r in finetune], held)
    stats = {
        "anchor": anchor.id,
        "selection": selection,
        "held_out_identity_to_anchor": [min(to_anchor[i] for i in order), max(to_anchor[i] for i in order)],
        "finetune_identity_to_held_out": [
            min(r.identity for r in relatives),
            max(r.identity for r in relatives),
        ],
        # how many of the 60 are the nearest held-out sequence of at least one fine-tuning sequence
        "held_out_with_a_finetune_relative": len({r.index for r in relatives}),
    }
    return held_out, finetune, stats


def paired_difference(report: dict, baseline: dict) -> dict:
    """Mean per-sequence difference in nats (negative: `report` is better) and its standard error over
    the held-out sequences: the same sequences under both models, so much tighter than either spread."""
    base = {row["id"]: row["nats"] for row in baseline["per_sequence"]}
    diffs = [row["nats"] - base[row["id"]] for row in report["per_sequence"]]
    mean = sum(diffs) / len(diffs)
    spread = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5 if len(diffs) > 1 else 0.0
    return {"mean_nats": mean, "standard_error_nats": spread / len(diffs) ** 0.5}


def write_fasta(path: Path, records) -> Path:
    path.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="workflow directory (new or empty)")
    parser.add_argument("--steps", type=int, default=200, help="optimiser steps of each training run")
    parser.add_argument("--anchor", help="the test-split record id the subfamily is centred on")
    parser.add_argument("--seed", type=int, default=0, help="draws the anchor when --anchor is not given")
    parser.add_argument(
        "--selection",
        choices=("nearest", "balanced"),
        default="nearest",
        help="nearest: the 240 closest to any held-out sequence (the issue's wording); balanced: each "
        "held-out sequence's nearest in turn",
    )
    parser.add_argument("--t-samples", type=int, default=16, help="evaluate's noise-level draws per sequence")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: protein-sedd's default)")
    args = parser.parse_args()
    out = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        sys.exit(f"{out} is not a new or empty folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    held_out, finetune, stats = choose_subfamily(bundled_splits(), args.anchor, args.seed, args.selection)
    held_fa = write_fasta(out / "held_out.fasta", held_out)
    train_fa = write_fasta(out / "finetune.fasta", finetune)
    print(f"subfamily: {json.dumps(stats)}", flush=True)

    device = ["--device", args.device, *(["--threads", str(args.threads)] if args.threads else [])]
    data = ["data.valid_fraction=0", "data.test_fraction=0", "trainer.log_every=10"]
    train_common = ["--fasta", str(train_fa), "--max-steps", str(args.steps), *device, *data]
    commands = {
        "finetuned": ["train", "--out", str(out / "finetuned"), "--init-from", "bundled", *train_common,
                      "trainer=finetune", "trainer.patience=0"],
        "scratch": ["train", "--out", str(out / "scratch"), *train_common, "trainer.warmup_steps=20"],
    }  # fmt: skip
    checkpoints = {
        "bundled": "acyp-tiny",
        "finetuned": str(out / "finetuned"),
        "scratch": str(out / "scratch"),
    }
    results, timings = {}, {}
    with open(out / "workflow.log", "w") as log:
        for name in ("finetuned", "scratch"):
            timings[f"train {name}"] = run(f"train {name}", commands[name], log)
        for name, checkpoint in checkpoints.items():
            report = out / f"evaluate_{name}.json"
            evaluate = ["evaluate", "--checkpoint", checkpoint, "--fasta", str(held_fa),
                        "--json", str(report), "--t-samples", str(args.t_samples), *device]  # fmt: skip
            commands[f"evaluate {name}"] = evaluate
            timings[f"evaluate {name}"] = run(f"evaluate {name}", evaluate, log)
            results[name] = json.loads(report.read_text())
    keys = (
        "nats_per_sequence",
        "bits_per_residue",
        "length_nats_per_sequence",
        "standard_error_nats_per_sequence",
    )
    summary = {
        "steps": args.steps,
        "subfamily": {**stats, "n_held_out": len(held_out), "n_finetune": len(finetune)},
        "held_out_bound": {name: {k: r.get(k) for k in keys} for name, r in results.items()},
        "paired_difference_to_bundled": {
            name: paired_difference(results[name], results["bundled"]) for name in ("finetuned", "scratch")
        },
        "commands": {name: "protein-sedd " + " ".join(c) for name, c in commands.items()},
        "seconds": {name: round(s, 1) for name, s in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"held-out bound on {len(held_out)} sequences ({args.steps} training steps):")
    for name, r in results.items():
        nats, bits = r["nats_per_sequence"], r["bits_per_residue"]
        length = r["length_nats_per_sequence"]
        print(f"  {name:10s} {nats:8.2f} nats/sequence  {bits:.4f} bits/residue  (length term {length:.2f})")
    for name, diff in summary["paired_difference_to_bundled"].items():
        print(
            f"  {name} - bundled: {diff['mean_nats']:+.2f} +- {diff['standard_error_nats']:.2f} nats/sequence"
        )
    print(f"summary: {out / 'summary.json'}")


if __name__ == "__main__":
    main()
