"""What the network designs in (`--precision`): auto's choice by device, the bf16 network copy, how close
its probabilities stay to fp32's, and the option's errors from the shell and from Python."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from protein_sedd.errors import UserError
from protein_sedd.io.fasta import read_fasta
from protein_sedd.runtime import precision as precision_
from protein_sedd.runtime.precision import (
    check_precision,
    cpu_has_native_bf16,
    network_autocast,
    network_for,
    resolve_precision,
)

from .conftest import run_cli

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu sse avx2 avx512f avx512bw", False),
        ("fpu avx512f avx512_bf16 avx512_vnni", True),
        ("fpu avx512f amx_bf16 amx_tile", True),
        ("fpu avx512f amx_bf16x", False),  # whole flags only
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Xeon\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_native_bf16.__wrapped__(cpuinfo) is native


def test_no_cpuinfo_means_no_native_bf16(tmp_path):
    assert cpu_has_native_bf16.__wrapped__(tmp_path / "missing") is False


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_where_native_and_explicit_choices_stand(monkeypatch, native):
    monkeypatch.setattr(precision_, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"


def test_a_bad_precision_names_the_choices():
    with pytest.raises(UserError, match=r"^precision 'float16': choose auto \(bf16 where"):
        check_precision("float16")


def _tiny():
    from tests.test_model import _config, _randomised

    return _randomised(_config("tiny"))


def test_the_bf16_network_is_a_copy_with_bf16_linear_weights_only():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy = network_for(model, "bf16")
    assert network_for(model, "fp32") is model and copy is not model
    for name, module in copy.named_modules():
        if isinstance(module, nn.Linear):
            assert module.weight.dtype == torch.bfloat16, name
        elif isinstance(module, (nn.Embedding, nn.LayerNorm)):
            assert module.weight.dtype == torch.float32, name  # the residual stream stays fp32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original untouched
    # the values autocast itself uses: its per-call casts of the fp32 weights give the same logits
    x, sigma = torch.randint(0, 20, (3, 30)), torch.zeros(3)
    with torch.inference_mode(), network_autocast(CPU, "bf16"):
        torch.testing.assert_close(copy(x, sigma), model(x, sigma), rtol=0, atol=0)


def test_bf16_probabilities_stay_within_rounding_of_fp32():
    # measured on the bundled model (32 rows of 100, random masks): mean KL 1.7e-5 nats a position, max
    # 4.5e-4, max |dp| 0.013 (the whole network cast to bf16: 2.9e-5, 7.2e-4, 0.017); a wrong activation
    # or weight in the bf16 path is orders of magnitude further off
    import protein_sedd

    network = protein_sedd.load("acyp-tiny", "cpu").network
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (32, 100), generator=generator)
    x[torch.rand(32, 100, generator=generator) < torch.rand(32, 1, generator=generator)] = 22  # the mask
    sigma = torch.zeros(32)
    with torch.inference_mode():
        p32 = torch.softmax(network(x, sigma)[..., :21].double(), -1)
        with network_autocast(CPU, "bf16"):
            p16 = torch.softmax(network_for(network, "bf16")(x, sigma)[..., :21].double(), -1)
    kl = (p32 * (p32.log() - p16.log())).sum(-1)
    assert float(kl.mean()) < 5e-5 and float(kl.max()) < 2e-3
    assert float((p32 - p16).abs().max()) < 0.04


@pytest.mark.parametrize("chosen", ["bf16", "fp32"])
def test_design_logs_and_records_its_precision(tmp_path, capsys, chosen):
    out = tmp_path / "designs.fasta"
    args = ["design", "--n", "3", "--steps", "8", "--length", "20", "--out", out, "--device", "cpu"]
    code, _, err = run_cli([*args, "--precision", chosen], capsys)
    assert code == 0, err
    assert f"device cpu ({chosen})" in err
    assert all(r.description.endswith(f"sampler=events precision={chosen}") for r in read_fasta(out))


def test_the_api_checks_and_records_the_precision():
    import protein_sedd

    model = protein_sedd.load("acyp-tiny", "cpu")
    with pytest.raises(UserError, match=r"^precision 'fp16': choose auto"):
        model.design(2, precision="fp16", progress=False)
    auto = resolve_precision("auto", CPU)
    designs = model.design(2, steps=8, length=12, progress=False)
    assert designs[0].header.endswith(f"sampler=events precision={auto}")
    same = model.design(2, steps=8, length=12, progress=False, precision=auto)
    assert [d.sequence for d in same] == [d.sequence for d in designs]
