"""Training throughput: tokens/s and s/step for the tiny, small and medium DDiT at batch 64 x 128.

    python workflows/benchmarks/train_throughput.py [--models tiny small medium] [--steps 5] [--device auto]

On CUDA it runs bf16 autocast with each attention kernel (SDPA; flash-attn varlen when installed) and reports
model FLOPs utilisation against --peak-tflops (H100 SXM dense bf16: 989); on a CPU fp32, or what
--cpu-precisions lists (`fp32,bf16`: bf16 autocast too, as `trainer.precision=bf16`).
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from protein_sedd.config.compose import config_dir
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.diffusion.graph import build_graph
from protein_sedd.diffusion.loss import score_entropy_loss
from protein_sedd.diffusion.noise import LogLinearNoise
from protein_sedd.model import DDiT, DDiTConfig
from protein_sedd.model import attention as attention_module
from protein_sedd.runtime.devices import default_threads, select_device


def model_flops_per_token(config: DDiTConfig, length: int) -> float:
    """Forward + backward FLOPs per token: 6 * (matmul parameters) + attention scores and values."""
    d, layers = config.hidden_size, config.n_layers
    per_layer = 4 * d * d + 2 * config.mlp_ratio * d * d  # qkv, out, mlp
    matmul_params = layers * per_layer + d * config.vocab_size
    attention = layers * 2 * 2 * length * d  # QK^T and AV, per token
    return 6 * matmul_params + 3 * attention


def time_steps(model, device, batch, length, steps, bf16) -> float:
    graph, noise = build_graph("absorbing", ALPHABET), LogLinearNoise()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x0 = torch.randint(0, ALPHABET.n_residues, (batch, length), device=device)
    lengths = torch.full((batch,), length, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = score_entropy_loss(model, graph, noise, x0, lengths, generator).mean()
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny", "small", "medium"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: as the CLI's)")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument(
        "--cpu-precisions", default="fp32", help="on a CPU: fp32, bf16 (autocast) or fp32,bf16 (both)"
    )
    args = parser.parse_args()
    device = select_device(args.device)
    torch.set_num_threads(args.threads or default_threads())
    variants = [(p, p == "bf16", "sdpa") for p in args.cpu_precisions.split(",")]
    if device.type == "cuda":
        variants = [("bf16", True, "sdpa")]
        if attention_module.flash_attn_varlen_func is not None:
            variants.append(("bf16", True, "flash-attn"))
    where = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {where}; batch {args.batch} x {args.length} tokens; "
        f"{args.steps} timed steps after 1 warm-up"
    )
    print(
        f"{'model':8} {'params':>8} {'precision':>9} {'attention':>10} "
        f"{'s/step':>8} {'tokens/s':>10} {'MFU':>6}"
    )
    saved_kernel = attention_module.flash_attn_varlen_func
    for name in args.models:
        values = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / f"{name}.yaml"))
        config = DDiTConfig.from_dict({**values, "max_length": max(values["max_length"], args.length)})
        for precision, bf16, kernel in variants:
            attention_module.flash_attn_varlen_func = saved_kernel if kernel == "flash-attn" else None
            torch.manual_seed(0)
            model = DDiT(config).to(device)
            seconds = time_steps(model, device, args.batch, args.length, args.steps, bf16)
            tokens = args.batch * args.length / seconds
            mfu = ""
            if device.type == "cuda":
                achieved = tokens * model_flops_per_token(config, args.length)
                mfu = f"{100 * achieved / (args.peak_tflops * 1e12):.1f}%"
            print(
                f"{name:8} {model.num_parameters() / 1e6:7.2f}M {precision:>9} {kernel:>10} {seconds:8.3f} "
                f"{tokens:10.0f} {mfu:>6}"
            )
    attention_module.flash_attn_varlen_func = saved_kernel


if __name__ == "__main__":
    main()
