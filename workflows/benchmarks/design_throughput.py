"""Benchmark design throughput: cached vs uncached sampling, designs/s and network passes.

    python workflows/benchmarks/design_throughput.py                       # --n 300 --steps 1024, length 100
    python workflows/benchmarks/design_throughput.py --n 64 --threads 1    # a shared 2-core CPU
    python workflows/benchmarks/design_throughput.py --checkpoint runs/acyp-tiny   # a trained model

Without --checkpoint the `tiny` model is built from configs/model/tiny.yaml with random weights (its
zero-initialised layers made non-zero so its outputs are not uniform). For a time-independent absorbing
model the rate at which positions unmask does not depend on the weights (each step unmasks a masked
position with probability expm1(d) / expm1(sigma_bar(t))), so the number of network passes, and so the
speed-up, is the same for a trained model; --checkpoint times one anyway. The uncached run costs
n x (steps + 1) sequence passes: on a small CPU, lower --n (the per-step cost is flat in the steps, so
--steps stays at 1024 for a representative cache ratio). Every device also checks that cached and
uncached designs are identical.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from protein_sedd.config import config_dir  # noqa: E402
from protein_sedd.data.alphabet import ALPHABET  # noqa: E402
from protein_sedd.data.design_starts import masked_starts  # noqa: E402
from protein_sedd.devices import default_threads  # noqa: E402
from protein_sedd.diffusion.graph import build_graph  # noqa: E402
from protein_sedd.diffusion.noise import LogLinearNoise, build_noise  # noqa: E402
from protein_sedd.diffusion.sampling import sample  # noqa: E402
from protein_sedd.model import DDiT, DDiTConfig  # noqa: E402


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
    from protein_sedd.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, device)
    graph = build_graph(loaded.config.graph.name, ALPHABET)
    return loaded.model, graph, build_noise(loaded.config.noise), str(loaded.path)


def timed_run(model, graph, noise, args, device, cache: bool):
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    result = sample(
        model,
        graph,
        noise,
        masked_starts([args.length] * args.n),
        steps=args.steps,
        cache=cache,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="designs per run")
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128, help="as `protein-sedd design` (default 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--checkpoint", default=None, help="time a trained run instead of the random tiny model"
    )
    parser.add_argument("--devices", default="auto", help="cpu, cuda, or auto (cpu, plus cuda when present)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: as the CLI's; 1 on a busy CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads or default_threads())
    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]

    console = Console(width=120)
    table = Table(
        title=f"design: --n {args.n} --steps {args.steps} length {args.length} batch {args.batch_size}"
    )
    for column in (
        "device",
        "model",
        "cache",
        "wall s",
        "designs/s",
        "network passes",
        "speed-up",
        "identical",
    ):
        table.add_column(column, justify="left" if column in ("device", "model") else "right")
    for name in devices:
        device = torch.device(name)
        model, graph, noise, label = load_model(args.checkpoint, device)
        timed_run(model, graph, noise, argparse.Namespace(**{**vars(args), "n": 2, "steps": 4}), device, True)
        cached, cached_s = timed_run(model, graph, noise, args, device, cache=True)
        console.print(f"{name}: cached run {cached_s:.1f} s; uncached run next (n x (steps + 1) passes)")
        uncached, uncached_s = timed_run(model, graph, noise, args, device, cache=False)
        identical = "yes" if cached.sequences == uncached.sequences else "NO"
        for result, seconds, speedup in (
            (uncached, uncached_s, ""),
            (cached, cached_s, f"{uncached_s / cached_s:.1f}x"),
        ):
            table.add_row(
                name,
                label,
                "on" if result.cached else "off",
                f"{seconds:.1f}",
                f"{args.n / seconds:.2f}",
                str(result.network_rows),
                speedup,
                identical,
            )
    console.print(table)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
