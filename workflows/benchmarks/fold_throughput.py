"""Benchmark the evaluators: ESMFold folding throughput (GPU) and seq-eval time for 300 designs (CPU).

    PROTEIN_SEDD_DATA=/path/to/data python workflows/benchmarks/fold_throughput.py   # holding acyp/hypf.fa
    python workflows/benchmarks/fold_throughput.py --fold-model tiny   # smoke-run the folding path on CPU

Folding uses a full-size ESMFold (ESM-2 3B + 48 trunk blocks, 4 recycles) with random weights: no download,
and the compute is the same as the trained model's. It needs a GPU; on CPU it is skipped with a message.
seq-eval runs the real command against the full ACYP reference, with a cold HMM cache (builds the HMM) and
warm. Designs are ACYP sequences with 25% of positions mutated (random ACYP-length sequences without data).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from protein_sedd.cli import main as cli_main  # noqa: E402
from protein_sedd.evaluation import family_hmm, folding, sequence_metrics  # noqa: E402
from protein_sedd.io.fasta import read_fasta, write_fasta  # noqa: E402

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def acyp_path() -> Path | None:
    from protein_sedd.data.datasets import resolve_dataset_path

    os.environ.setdefault("PROTEIN_SEDD_OFFLINE", "1")  # a benchmark never downloads
    try:
        return resolve_dataset_path("acyp")
    except Exception:
        return None


def make_designs(n: int, reference: list[str] | None, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    if not reference:
        return ["".join(rng.choice(AMINO) for _ in range(rng.randint(64, 127))) for _ in range(n)]
    designs = []
    for parent in rng.sample(reference, n):
        letters = list(parent)
        for position in rng.sample(range(len(letters)), len(letters) // 4):
            letters[position] = rng.choice(AMINO)
        designs.append("".join(letters))
    return designs


def esmfold_config(size: str):
    from transformers import EsmConfig
    from transformers.models.esm.configuration_esm import get_default_vocab_list

    common = dict(
        vocab_size=33, max_position_embeddings=1026, position_embedding_type="rotary", pad_token_id=1,
        mask_token_id=32, token_dropout=True, emb_layer_norm_before=False, layer_norm_eps=1e-5,
        is_folding_model=True, vocab_list=list(get_default_vocab_list()),
    )  # fmt: skip
    if size == "full":  # the shape of facebook/esmfold_v1: ESM-2 3B, default trunk (48 blocks, 4 recycles)
        return EsmConfig(
            hidden_size=2560, num_hidden_layers=36, num_attention_heads=40, intermediate_size=10240,
            esmfold_config=dict(fp16_esm=True, lddt_head_hid_dim=128), **common,
        )  # fmt: skip
    structure_module = dict(
        sequence_dim=32, pairwise_dim=16, ipa_dim=8, resnet_dim=16, num_heads_ipa=2, num_blocks=1
    )
    trunk = dict(
        num_blocks=1, sequence_state_dim=32, pairwise_state_dim=16, sequence_head_width=16,
        pairwise_head_width=8, structure_module=structure_module,
    )  # fmt: skip
    return EsmConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        esmfold_config=dict(fp16_esm=False, lddt_head_hid_dim=16, trunk=trunk), **common,
    )  # fmt: skip


def bench_fold(
    designs: list[str], size: str, max_tokens: int, chunk_size: int | None
) -> list[tuple[str, str]]:
    from transformers import EsmForProteinFolding

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if size == "full" and device.type != "cuda":
        print(
            "fold: no CUDA device here, skipping the full-size ESMFold throughput "
            "(--fold-model tiny smoke-runs the path on CPU)"
        )
        return []
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):  # initialise on the GPU directly: 3.5B parameters are slow to init on CPU
        module = EsmForProteinFolding(esmfold_config(size))
    backend = folding.TransformersESMFold(module, device, chunk_size)
    build_s = time.perf_counter() - start
    backend.fold(designs[:2])  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    folded = sum(len(batch) for batch, _ in folding.fold_in_batches(backend, designs, max_tokens))
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    residues = sum(map(len, designs))
    rows = [
        ("fold: device", torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
        (
            "fold: model",
            f"{size}, {sum(p.numel() for p in module.parameters()) / 1e6:.1f}M params",
        ),
        ("fold: build + move (s)", f"{build_s:.1f}"),
        ("fold: tokens/batch, chunk", f"{max_tokens}, {chunk_size or 'off'}"),
        ("fold: designs folded", f"{folded} ({residues} residues)"),
        ("fold: time (s)", f"{elapsed:.1f}"),
        ("fold: sequences/s", f"{folded / elapsed:.2f}"),
        ("fold: residues/s", f"{residues / elapsed:.0f}"),
    ]
    if device.type == "cuda":
        rows.append(("fold: peak GPU memory (GiB)", f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"))
    return rows


def bench_seq_eval(designs: list[str], reference: Path) -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fasta = tmp / "designs.fasta"
        write_fasta(fasta, [(f"design_{i:04d}", s) for i, s in enumerate(designs)])
        os.environ["XDG_CACHE_HOME"] = str(tmp / "cache")  # a cold HMM cache that the benchmark owns
        for label in ("cold HMM cache", "warm HMM cache"):
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                rc = cli_main(
                    ["seq-eval", str(fasta), "--reference", str(reference), "--out-dir", str(tmp / "out")]
                )
            if rc != 0:
                raise SystemExit(f"seq-eval failed with exit code {rc}")
            rows.append(
                (f"seq-eval {len(designs)} designs, {label} (s)", f"{time.perf_counter() - start:.1f}")
            )

    # where the time goes
    timings = {}
    start = time.perf_counter()
    records = read_fasta(reference)
    sequences = [r.sequence for r in records]
    timings["read reference"] = time.perf_counter() - start
    start = time.perf_counter()
    hmm = family_hmm.build_family_hmm(family_hmm.sample_sequences(sequences))
    timings[f"build HMM from {family_hmm.HMM_SAMPLE_SIZE}"] = time.perf_counter() - start
    start = time.perf_counter()
    family_hmm.family_bits(hmm, designs)
    timings["HMM scores"] = time.perf_counter() - start
    start = time.perf_counter()
    sequence_metrics.nearest_references(designs, sequences)
    timings["nearest reference"] = time.perf_counter() - start
    start = time.perf_counter()
    sequence_metrics.mean_pairwise_identity(designs)
    timings[f"{sequence_metrics.MAX_DIVERSITY_PAIRS} pairwise identities"] = time.perf_counter() - start
    rows += [(f"  {stage} (s)", f"{seconds:.2f}") for stage, seconds in timings.items()]
    rows.append(("reference sequences", str(len(sequences))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="number of designs")
    parser.add_argument("--fold-model", choices=["full", "tiny"], default="full")
    parser.add_argument("--max-tokens-per-batch", type=int, default=4096)
    parser.add_argument("--chunk-size", type=int, default=0, help="0 = no chunking")
    parser.add_argument("--skip-fold", action="store_true")
    parser.add_argument("--skip-seq-eval", action="store_true")
    args = parser.parse_args()

    reference = acyp_path()
    reference_sequences = [r.sequence for r in read_fasta(reference)] if reference else None
    designs = make_designs(args.n, reference_sequences)
    rows: list[tuple[str, str]] = [("cpu threads", str(torch.get_num_threads()))]
    if not args.skip_fold:
        rows += bench_fold(designs, args.fold_model, args.max_tokens_per_batch, args.chunk_size or None)
    if not args.skip_seq_eval:
        if reference is None:
            print("seq-eval: ACYP reference not found (set PROTEIN_SEDD_DATA), skipping")
        else:
            rows += bench_seq_eval(designs, reference)
    table = Table(title="protein-sedd evaluator benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in rows:
        table.add_row(measure, value)
    Console().print(table)


if __name__ == "__main__":
    main()
