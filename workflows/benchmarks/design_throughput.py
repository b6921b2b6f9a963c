"""Benchmark design throughput: the event-driven sampler vs the step loop (cached, and uncached).

    python workflows/benchmarks/design_throughput.py                  # --n 300 --steps 1024, lengths 64:127
    python workflows/benchmarks/design_throughput.py --threads 1      # a shared 2-core CPU
    python workflows/benchmarks/design_throughput.py --runs events,cached,uncached --n 32   # + the reference
    python workflows/benchmarks/design_throughput.py --checkpoint runs/acyp-tiny   # a trained model

Without --checkpoint the `tiny` model is built from configs/model/tiny.yaml with random weights (its
zero-initialised layers made non-zero so its outputs are not uniform). For a time-independent absorbing
model the times at which positions unmask do not depend on the weights (each step unmasks a masked
position with probability expm1(d) / expm1(sigma_bar(t))), so the number of network passes, and so the
speed-up, is the same for a trained model; --checkpoint times one anyway. Lengths are drawn uniformly
from --lengths A:B (seeded), or all equal to --lengths L.

Runs (--runs): `events` (the default sampler: visits only the steps where positions unmask), `cached`
(the step loop, re-running the network only on changed sequences), `uncached` (the step loop, every
sequence at every step: n x (steps + 1) passes, slow; its designs must equal `cached`'s). Each run
reports wall-clock and CPU time, and how much of each was spent inside the network's forward pass, the
rest being the sampler's own work ("outside"). The speed-up is against the first step-loop run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from protein_sedd.config.compose import config_dir  # noqa: E402
from protein_sedd.data.alphabet import ALPHABET  # noqa: E402
from protein_sedd.design.request import masked_starts  # noqa: E402
from protein_sedd.diffusion import event_sampling  # noqa: E402
from protein_sedd.diffusion.graph import build_graph  # noqa: E402
from protein_sedd.diffusion.noise import LogLinearNoise, build_noise  # noqa: E402
from protein_sedd.diffusion.sampling import sample  # noqa: E402
from protein_sedd.model import DDiT, DDiTConfig  # noqa: E402
from protein_sedd.runtime.devices import default_threads  # noqa: E402
from protein_sedd.runtime.precision import resolve_precision  # noqa: E402


def random_tiny_model() -> DDiT:
    config = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / "tiny.yaml"))
    torch.manual_seed(0)
    model = DDiT(DDiTConfig.from_dict(config))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "adaLN" in name or "final.linear" in name:
                parameter.normal_(0, 0.05)
    return model.eval()


def load_model(checkpoint: str | None, device: torch.device):
    """(model, graph, noise, name) for a checkpoint or the random tiny model."""
    if checkpoint is None:
        return (
            random_tiny_model().to(device),
            build_graph("absorbing", ALPHABET),
            LogLinearNoise(),
            "tiny-random",
        )
    from protein_sedd.model.sources import load_checkpoint

    loaded = load_checkpoint(checkpoint, device)
    graph = build_graph(loaded.config.graph.name, ALPHABET)
    return loaded.model, graph, build_noise(loaded.config.noise), str(loaded.path)


class ForwardTimer:
    """Wraps a model's forward to sum the wall-clock and CPU time spent inside it."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.wall = self.cpu = 0.0
        # the step loop calls forward, the event sampler logits_at; patched on the class, so that the bf16
        # copy the sampler runs (runtime/precision.network_for) is timed too
        for name in ("forward", "logits_at"):
            if hasattr(type(model), name):
                setattr(type(model), name, self.timed(getattr(type(model), name)))

    def timed(self, method):
        def call(*args, **kwargs):
            self.sync()
            wall, cpu = time.perf_counter(), time.process_time()
            out = method(*args, **kwargs)
            self.sync()
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            return out

        return call

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def reset(self) -> None:
        self.wall = self.cpu = 0.0


def draw_lengths(spec: str, n: int, seed: int) -> list[int]:
    """n lengths: uniform on A..B for 'A:B' (seeded), or all L for 'L'."""
    if ":" not in spec:
        return [int(spec)] * n
    low, high = (int(v) for v in spec.split(":"))
    return np.random.default_rng(seed).integers(low, high + 1, size=n).tolist()


RUNS = {"events": {"sampler": "events"}, "cached": {"sampler": "steps", "cache": True}}
RUNS["uncached"] = {"sampler": "steps", "cache": False}


def timed_run(model, graph, noise, args, lengths, device, timer: ForwardTimer, run: str):
    timer.reset()
    timer.sync()
    wall, cpu = time.perf_counter(), time.process_time()
    result = sample(
        model, graph, noise, masked_starts(lengths), steps=args.steps, seed=args.seed,
        batch_size=args.batch_size, precision=args.precision, **RUNS[run],
    )  # fmt: skip
    timer.sync()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="designs per run")
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--lengths", default="64:127", help="A:B (uniform, seeded) or one length L")
    parser.add_argument("--batch-size", type=int, default=128, help="as `protein-sedd design` (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="events,cached", help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument(
        "--checkpoint", default=None, help="time a trained run instead of the random tiny model"
    )
    parser.add_argument("--devices", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when present)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: as the CLI's; 1 on a busy CPU)"
    )
    parser.add_argument("--precision", default="auto", help="auto, bf16 or fp32 (as `design --precision`)")
    calls = event_sampling.CPU_TOKENS_PER_CALL
    parser.add_argument(
        "--tokens-per-call", type=int, default=None,
        help=f"the event sampler's CPU call size (default, by precision: {calls})",
    )  # fmt: skip
    args = parser.parse_args()
    if args.tokens_per_call:
        event_sampling.CPU_TOKENS_PER_CALL = dict.fromkeys(("fp32", "bf16"), args.tokens_per_call)
    runs = args.runs.split(",")
    if unknown := [r for r in runs if r not in RUNS]:
        parser.error(f"--runs: unknown {unknown}; choose from {', '.join(RUNS)}")
    torch.set_num_threads(args.threads or default_threads())
    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    lengths = draw_lengths(args.lengths, args.n, args.seed)

    console = Console(width=140)
    table = Table(
        title=f"design: --n {args.n} --steps {args.steps} lengths {args.lengths} batch {args.batch_size}"
    )
    columns = ["device", "model", "run", "wall s", "CPU s", "network wall s", "outside wall s"]
    columns += ["outside CPU s", "designs/s", "network passes", "speed-up (wall)", "speed-up (CPU)"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("device", "model", "run") else "right")
    for name in devices:
        device = torch.device(name)
        model, graph, noise, label = load_model(args.checkpoint, device)
        timer = ForwardTimer(model, device)
        warm = argparse.Namespace(**{**vars(args), "steps": 4})
        for run in runs:
            timed_run(model, graph, noise, warm, [8, 8], device, timer, run)
        results = {}
        for run in runs:
            result, wall, cpu = timed_run(model, graph, noise, args, lengths, device, timer, run)
            results[run] = (result, wall, cpu, timer.wall, timer.cpu)
            console.print(f"{name} {run}: {wall:.1f} s wall, {cpu:.1f} s CPU, {result.network_rows} passes")
        reference = next((results[r] for r in runs if r != "events"), None)
        for run, (result, wall, cpu, net_wall, net_cpu) in results.items():
            speedups = ("", "")
            if reference is not None and run == "events":
                speedups = (f"{reference[1] / wall:.2f}x", f"{reference[2] / cpu:.2f}x")
            table.add_row(
                name, label, run, f"{wall:.1f}", f"{cpu:.1f}", f"{net_wall:.1f}", f"{wall - net_wall:.1f}",
                f"{cpu - net_cpu:.1f}", f"{args.n / wall:.2f}", str(result.network_rows), *speedups,
            )  # fmt: skip
        if "cached" in results and "uncached" in results:
            same = results["cached"][0].sequences == results["uncached"][0].sequences
            console.print(f"{name}: cached and uncached designs identical: {'yes' if same else 'NO'}")
    console.print(table)
    precision = ", ".join(f"{d} {resolve_precision(args.precision, torch.device(d))}" for d in devices)
    calls = f"tokens per CPU call {event_sampling.CPU_TOKENS_PER_CALL}"
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {precision}, {calls}")


if __name__ == "__main__":
    main()
