"""What the network computes in when it designs: `fp32`, or `bf16` autocast (`--precision`).

bf16 autocast runs the matrix products in bfloat16 with float32 accumulation, while norms, softmax, the
residual stream and the sampler's categorical draws (float64) stay in full precision. It pays where the
hardware multiplies bfloat16 natively: CUDA GPUs, and CPUs with AMX or AVX512-BF16 instructions (on this
project's 2-core Xeon with AMX `design --n 300 --steps 1024` takes 28.5 s, against 48.3 s in fp32;
docs/results.md). Elsewhere bfloat16 is emulated and slower, so `auto` picks
bf16 where it is native and fp32 otherwise. Designs depend on the precision as on the device: the same
seed gives other draws in bf16 than in fp32 (from the same distribution, up to bfloat16 rounding).
"""

from __future__ import annotations

import contextlib
import functools
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING

from protein_sedd.errors import UserError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "bf16", "fp32")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that multiply bf16 natively


def check_precision(name: str, field: str = "precision") -> None:
    if name not in PRECISIONS:
        raise UserError(
            f"{{{field}}} {name!r}: choose auto (bf16 where the device computes it natively), bf16 or fp32",
            field=field,
        )


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has AMX or AVX512-BF16 (Linux; elsewhere: unknown, so False)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    flags = next((line.split(":", 1)[1].split() for line in lines), [])
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(name: str, device: torch.device) -> str:
    """`bf16` or `fp32` for `name` on `device`: auto is bf16 on CUDA and on CPUs with native bf16."""
    check_precision(name)
    if name != "auto":
        return name
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"


def network_autocast(device: torch.device, precision: str):
    """The context a network pass runs in at a resolved precision (`bf16` or `fp32`)."""
    import torch

    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def network_for(model, precision: str):
    """The network to run at a resolved precision: `model` itself for fp32; for bf16 a copy whose linear
    layers hold bfloat16 weights, so autocast casts only the activations. (Left fp32, every weight is cast
    again at every call, which on a CPU costs as much as the bf16 products save for a small network.) The
    values are autocast's own: the same round-to-nearest bfloat16 weights, cast once. A network without
    linear layers is returned as it is."""
    import torch
    from torch import nn

    if precision != "bf16" or not any(isinstance(m, nn.Linear) for m in model.modules()):
        return model

    copy = deepcopy(model)
    for module in copy.modules():
        if isinstance(module, nn.Linear):
            module.to(torch.bfloat16)
    return copy
