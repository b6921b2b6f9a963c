"""Mutation testing: plant known bugs one at a time and report which tests catch each.

    python workflows/mutation_tests.py                  # every mutation, about 2 minutes on one core
    python workflows/mutation_tests.py --only guide-noise-level --keep

Each mutation is a one-line change to the package (a wrong constant, a flipped comparison, a dropped term)
that an audit planted and that the suite once missed, or a bug the samplers and scorers could plausibly grow.
For each, the repository is copied to a temporary folder (the package, the tests and the workflows), the
change is applied there (the working tree is never touched), and the tests named for it run with `-x`. A
mutation is **caught** when a test fails. The unmutated copy runs the same tests first: they must pass, or the
report says the baseline is broken. A mutation whose line is no longer in its file is reported **stale** (the
code moved: update it here). Exit code 1 when any mutation survives or is stale, so CI can run this as a
check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository
    old: str  # must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest node ids that should catch it
    what: str


GUIDANCE = "tests/test_guidance.py::"
EVENTS = "tests/test_event_sampler.py::"
MUTATIONS = [
    Mutation(
        "elbo-error-over-k",
        "protein_sedd/evaluation/variants.py",
        "differences.std(axis=1, ddof=1) / math.sqrt(t_samples)",
        "differences.std(axis=1, ddof=1) / t_samples",
        (
            "tests/test_score_variants.py::test_elbo_difference_is_the_difference_of_scores_with_a_paired_error",
        ),
        "the paired ELBO difference's standard error divided by K instead of sqrt(K)",
    ),
    Mutation(
        "guide-noise-level",
        "protein_sedd/guidance/reweighting.py",
        "return torch.full((rows,), -math.expm1(-sigma_bar), device=device)",
        "return torch.full((rows,), math.exp(-sigma_bar), device=device)",
        (GUIDANCE + "test_the_guide_reads_the_noise_level_of_each_step_and_each_event",),
        "the step loop's guide fed the unmasked share instead of the mask fraction",
    ),
    Mutation(
        "guide-event-noise-level",
        "protein_sedd/guidance/reweighting.py",
        "noise = -torch.expm1(-torch.tensor(sigma_bars, ",
        "noise = -torch.expm1(-torch.tensor([sigma_bars[0]] * len(sigma_bars), ",
        (GUIDANCE + "test_the_guide_reads_the_noise_level_of_each_step_and_each_event",),
        "the event sampler's guide fed the first row's noise level for every row",
    ),
    Mutation(
        "guide-ignores-target",
        "protein_sedd/guidance/guide.py",
        "return F.log_softmax(outputs, dim=-1)[:, self.classes.index(float(target))]",
        "return F.log_softmax(outputs, dim=-1)[:, -1]",
        (
            GUIDANCE + "test_the_log_likelihood_of_each_target_is_its_own_class",
            GUIDANCE + "test_exact_guidance_toward_the_other_class_draws_its_conditional",
        ),
        "a classifier's likelihood of the last class, whatever the target",
    ),
    Mutation(
        "exact-guidance-scale-ignored",
        "protein_sedd/guidance/reweighting.py",
        "weights = probs * (self.scale * log_r).clamp(",
        "weights = probs * (log_r).clamp(",
        (GUIDANCE + "test_event_reweighting_is_the_denoising_distribution_times_r_to_the_gamma",),
        "the event sampler's exact guidance at scale 1 whatever the scale",
    ),
    Mutation(
        "exact-ratios-wrong-base",
        "protein_sedd/guidance/reweighting.py",
        "return there.view(len(rows), n) - here[rows, None], len(x) + len(candidates)",
        "return there.view(len(rows), n) - here[:1, None], len(x) + len(candidates)",
        (GUIDANCE + "test_exact_ratios_equal_brute_force_at_every_masked_position_for_a_nonlinear_guide",),
        "every candidate compared with the first row instead of its own",
    ),
    Mutation(
        "taylor-sign",
        "protein_sedd/guidance/reweighting.py",
        "return g[..., :n] - g.gather(-1, tokens.unsqueeze(-1)), len(x)",
        "return g.gather(-1, tokens.unsqueeze(-1)) - g[..., :n], len(x)",
        (GUIDANCE + "test_tag_ratios_equal_brute_force_for_a_guide_linear_in_the_one_hot",),
        "Taylor ratios of the opposite sign (steering away from the target)",
    ),
    Mutation(
        "weight-threshold-strict",
        "protein_sedd/data/family/weights.py",
        "close = (matches >= needed).float()",
        "close = (matches > threshold * length).float()",
        ("tests/test_alignment.py::test_a_pair_at_exactly_the_threshold_counts_as_neighbours",),
        "redundancy neighbours at identity > theta instead of >= theta",
    ),
    Mutation(
        "neff-of-the-training-split",
        "protein_sedd/data/family/training_set.py",
        'splits.stats["neff"] = round(float(self.weights[kept].sum()), 3)',
        'splits.stats["neff"] = round(float(self.weights[splits.train.indices].sum()), 3)',
        ("tests/test_alignment.py::test_train_on_an_alignment_records_neff_and_designs_full_lengths",),
        "Neff of the training split recorded as the family's",
    ),
    Mutation(
        "majority-class-min",
        "protein_sedd/guidance/training.py",
        'report["majority_class_share"] = max(shares)',
        'report["majority_class_share"] = min(shares)',
        (GUIDANCE + "test_the_held_out_report_counts_the_majority_class_and_the_accuracy_by_hand",),
        "the held-out report's majority class share as the minority's",
    ),
    Mutation(
        "event-passes-counted-per-event",
        "protein_sedd/diffusion/event_sampling.py",
        "self.passes = int(new_group.sum())",
        "self.passes = len(rows)",
        (EVENTS + "test_the_python_api_names_its_own_arguments_and_records_the_sampler",),
        "network passes counted per unmasked position instead of per (sequence, step)",
    ),
    Mutation(
        "exact-schedule-pairs-share-a-step",
        "protein_sedd/diffusion/event_sampling.py",
        "step[order] = torch.arange(len(order), device=order.device)",
        "step[order] = torch.arange(len(order), device=order.device) // 2",
        (
            EVENTS + "test_the_exact_schedule_unmasks_one_position_at_a_time_in_a_uniform_order",
            EVENTS + "test_exact_steps_draw_the_distribution_with_no_residue_drawn_jointly",
        ),
        "steps='exact' drawing two positions jointly",
    ),
    Mutation(
        "exact-schedule-left-to-right",
        "protein_sedd/diffusion/event_sampling.py",
        "order = torch.argsort(-survive, stable=True)",
        "order = torch.arange(len(survive), device=survive.device)",
        (EVENTS + "test_the_exact_schedule_unmasks_one_position_at_a_time_in_a_uniform_order",),
        "steps='exact' unmasking left to right instead of in a random order",
    ),
    Mutation(
        "esm2-no-eos",
        "protein_sedd/model/esm2.py",
        "ids[torch.arange(batch, device=tokens.device), lengths.long() + 1] = self.eos_id",
        "ids[:, 0] = self.cls_id",
        ("tests/test_esm2.py::test_the_network_feeds_cls_residues_eos_and_reads_the_projects_alphabet",),
        "ESM-2 fed without its <eos> token",
    ),
    Mutation(
        "tied-weights-stored-twice",
        "protein_sedd/model/folder.py",
        "return {name: tensor for name, tensor in module.state_dict().items() if name not in tied}",
        "return dict(module.state_dict())",
        ("tests/test_esm2.py::test_every_command_runs_through_a_fine_tuned_esm2_and_it_resumes_exactly",),
        "tied weights written under both names (safetensors refuses shared tensors)",
    ),
]


def copy_repository(root: Path) -> Path:
    """The package, tests and workflows under root/repo (the tests named here need no dataset)."""
    copy = root / "repo"
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", "runs")
    shutil.copytree(REPO, copy, ignore=ignore)
    return copy


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str]:
    """(pytest's exit code, its last line) for `tests` in the copy, its own package first on the path."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--slow", *tests]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, lines[-1] if lines else done.stderr.strip()[-200:]


def check_mutation(mutation: Mutation, timeout: int, keep: bool) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"mutation-{mutation.name}-"))
    try:
        copy = copy_repository(root)
        code, last = run_tests(copy, mutation.tests, timeout)
        if code != 0:
            return {"result": "baseline fails", "detail": last}
        target = copy / mutation.path
        text = target.read_text()
        if text.count(mutation.old) != 1:
            return {"result": "stale", "detail": f"{mutation.path}: the line is not there once"}
        target.write_text(text.replace(mutation.old, mutation.new))
        code, last = run_tests(copy, mutation.tests, timeout)
        return {"result": "caught" if code == 1 else "SURVIVED" if code == 0 else "error", "detail": last}
    finally:
        if keep:
            print(f"  kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="Run this mutation only (repeatable).")
    parser.add_argument("--list", action="store_true", help="List the mutations and exit.")
    parser.add_argument("--keep", action="store_true", help="Keep each mutated copy (its path is printed).")
    parser.add_argument("--timeout", type=int, default=600, help="Seconds per pytest run.")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or []) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutation(s): {', '.join(sorted(unknown))}; --list shows them", file=sys.stderr)
        return 2
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.what} ({m.path})")
        return 0
    failed = 0
    for mutation in chosen:
        began = time.perf_counter()
        outcome = check_mutation(mutation, args.timeout, args.keep)
        failed += outcome["result"] != "caught"
        print(f"{outcome['result']:>14}  {mutation.name}: {mutation.what} "
              f"({time.perf_counter() - began:.0f} s; {outcome['detail']})", flush=True)  # fmt: skip
    print(f"{len(chosen) - failed} of {len(chosen)} mutations caught")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
