"""The whole pipeline on ACYP: train -> evaluate -> design -> fold-eval -> seq-eval -> select -> report.

It ends with `report.html` (`protein-sedd report`: the campaign as one offline page) and `summary.md`.

    python workflows/acyp.py --out runs/acyp-pipeline                 # full profile (hours on a CPU)
    python workflows/acyp.py --smoke --out /tmp/acyp-smoke            # the whole chain in a few minutes
    python workflows/acyp.py --out DIR --esmfold /path/to/esmfold_v1  # fold with real weights
    python workflows/acyp.py --out DIR --devices 8                    # train, design, fold on 8 GPUs

Every step is the project's own command line, so the summary is what a user would get by hand.
The smoke profile trains a tiny model briefly and folds with a toy random-init ESMFold: a plumbing
check whose pLDDT means nothing, and the summary says so. The full profile folds only when real ESMFold
weights are given (--esmfold) or found in the HF cache; without them it skips folding and says so in the
summary instead of failing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from command_steps import step  # workflows/: on the path when a workflow runs

PROFILES = {
    "smoke": {
        "train": ["model=tiny", "--max-steps", "60", "trainer.batch_size=32", "trainer.warmup_steps=10",
                  "trainer.lr=2e-3", "trainer.val_every=60", "trainer.val_sequences=64",
                  "trainer.val_t_samples=2"],
        "evaluate": ["--t-samples", "1"],
        "design": ["--n", "12", "--steps", "64"],
    },
    "full": {
        "train": ["model=small", "--max-steps", "20000"],
        "evaluate": ["--t-samples", "32"],
        "design": ["--n", "300", "--steps", "1024"],
    },
}  # fmt: skip


def find_esmfold(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache("facebook/esmfold_v1", "config.json")
        return "facebook/esmfold_v1" if isinstance(cached, str) else None
    except ImportError:
        return None


def write_summary(out: Path, profile: str, timings: dict, fold_note: str | None) -> Path:
    likelihood = json.loads((out / "evaluate.json").read_text())
    seq = json.loads((out / "seq_eval" / "summary.json").read_text())
    lines = [
        f"# protein-sedd on ACYP ({profile} profile)",
        "",
        "## Likelihood (test split)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {k} | {likelihood[k]:.4g} |" for k in ("nats_per_sequence", "bits_per_residue",
                                                      "perplexity_bound")),
        f"| n_sequences | {likelihood['n_sequences']} |",
        "",
        "![loss curve](run/loss_curve.png)",
        "",
        "## Designs: sequence metrics (seq-eval)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in seq.items()
          if isinstance(v, int | float | str) and not isinstance(v, bool)),
        "",
        *(f"![{p.stem}](seq_eval/{p.name})" for p in sorted((out / "seq_eval").glob("*.png"))),
        "",
        "## Designs: folding (fold-eval)",
        "",
    ]  # fmt: skip
    if fold_note:
        lines += [fold_note, ""]
    else:
        fold = json.loads((out / "fold_eval" / "summary.json").read_text())
        if fold.get("note"):  # fold-eval's mark of the toy ESMFold
            lines += [
                "**Plumbing check only:** no ESMFold weights were given, so these designs were folded with a "
                "toy random-weight ESMFold. This shows that fold-eval runs end to end; its pLDDT and pTM say "
                "nothing about the designs.",
                "",
            ]
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [
            f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in fold.items()
            if isinstance(v, int | float | str)
        ]  # rates with intervals stay in summary.json
        lines += [
            "",
            *(f"![{p.stem}](fold_eval/{p.name})" for p in sorted((out / "fold_eval").glob("*.png"))),
            "",
        ]
    picks = json.loads((out / "picks" / "summary.json").read_text())
    lines += [
        "## The shortlist (select)",
        "",
        f"Ranked by {picks['rank_by']}; designs left after each step:",
        "",
    ]
    lines += ["| step | designs left |", "| --- | --- |"]
    lines += [f"| {stage['stage']} | {stage['left']} |" for stage in picks["funnel"]]
    lines += ["", "![funnel](picks/funnel.png)", ""]
    lines += ["The whole campaign as one page: [report.html](report.html) (`protein-sedd report`).", ""]
    lines += ["## Wall-clock time", "", "| step | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in timings.items()]
    from protein_sedd.io.atomic import write_text_atomic

    path = out / "summary.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="workflow directory (created; must be new or empty)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model, toy ESMFold: minutes on a CPU")
    parser.add_argument(
        "--esmfold", help="ESMFold weights: a local directory or facebook/esmfold_v1 in the HF cache"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--devices", type=int, default=1, help="ranks for train, design and fold-eval (one per GPU)"
    )
    args = parser.parse_args()
    profile = PROFILES["smoke" if args.smoke else "full"]
    out = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # it writes summary.md, workflow.log, ...
        sys.exit(f"{out} is not a new or empty folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    timings, fold_note = {}, None
    run, designs, device = str(out / "run"), out / "designs.fasta", ["--device", args.device]
    ranks = ["--devices", str(args.devices)]
    commands = {
        "train": ["train", "--dataset", "acyp", "--out", run, *device, *ranks, *profile["train"]],
        "evaluate": ["evaluate", "--checkpoint", run, "--dataset", "acyp", "--split", "test",
                     "--json", str(out / "evaluate.json"), *device, *profile["evaluate"]],
        "design": ["design", "--checkpoint", run, "--out", str(designs), *device, *ranks, *profile["design"]],
        "fold-eval": ["fold-eval", str(designs), "--out-dir", str(out / "fold_eval"), *device, *ranks],
        "seq-eval": ["seq-eval", str(designs), "--reference", "acyp", "--out-dir", str(out / "seq_eval")],
    }  # fmt: skip
    from protein_sedd.testing.tiny_esmfold import is_toy_esmfold

    with open(out / "workflow.log", "w") as log:
        for name in ("train", "evaluate", "design"):
            timings[name] = step(name, commands[name], log)
        esmfold = find_esmfold(args.esmfold)
        if args.smoke and esmfold is None:
            from protein_sedd.testing.tiny_esmfold import PLUMBING_NOTE, build_tiny_esmfold

            esmfold = str(build_tiny_esmfold(out / "tiny_esmfold"))
            print(f"[fold-eval] no ESMFold weights given: {PLUMBING_NOTE}", flush=True)
        if esmfold is None:
            fold_note = (
                "Folding skipped: no ESMFold weights (pass --esmfold DIR, or run "
                "`hf download facebook/esmfold_v1` on a machine with internet)."
            )
        else:
            timings["fold-eval"] = step("fold-eval", [*commands["fold-eval"], "--model", esmfold], log)
        timings["seq-eval"] = step("seq-eval", commands["seq-eval"], log)
        picks = ["select", str(designs), "--out", str(out / "picks"), "--seq-eval", str(out / "seq_eval")]
        if esmfold is not None and not is_toy_esmfold(esmfold):  # a toy model's pLDDT must not pick anything
            picks += ["--fold-eval", str(out / "fold_eval")]
        if args.smoke:  # a few steps of training make no family members: select checks the plumbing only
            picks += ["--min-family-bits", "0"]
        timings["select"] = step("select", picks, log)
        report = ["report", "--out", str(out / "report.html"), "--run", run, "--designs", str(designs),
                  "--seq-eval", str(out / "seq_eval"), "--select", str(out / "picks")]  # fmt: skip
        if esmfold is not None:
            report += ["--fold-eval", str(out / "fold_eval")]
        timings["report"] = step("report", report, log)
    summary = write_summary(out, "smoke" if args.smoke else "full", timings, fold_note)
    print(f"summary: {summary}")


if __name__ == "__main__":
    main()
