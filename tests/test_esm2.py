"""ESM-2 as the score network, on a tiny random-init EsmForMaskedLM saved as a real checkpoint folder (the
real weights cannot be downloaded here): the token layout against ESM's own forward pass, the score's
parametrisation, every command through it, the Hub cache, LoRA, resume and damaged configs."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

import protein_sedd
from protein_sedd.data.alphabet import ALPHABET
from protein_sedd.errors import UserError

from .conftest import SYNTHETIC_ENTROPY, run_cli, write_synthetic_fasta

pytest.importorskip("transformers")

HUB_ID = "facebook/esm2_t6_8M_UR50D"
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"
WILD_TYPE = "MKVLAGHEWR"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from protein_sedd.testing.tiny_esm2 import build_tiny_esm2

    return build_tiny_esm2(tmp_path_factory.mktemp("esm2") / "tiny")


@pytest.fixture
def hub_cache(tmp_path, tiny, monkeypatch):
    """A Hugging Face cache holding the tiny model as facebook/esm2_t6_8M_UR50D, offline."""
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hub"
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    shutil.copytree(tiny, repo / "snapshots" / SNAPSHOT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SNAPSHOT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def _network(tiny, lora_rank=0):
    from protein_sedd.model.config import Esm2Config
    from protein_sedd.model.esm2 import Esm2Network, resolve

    model = resolve({**Esm2Config().to_dict(), "pretrained": str(tiny), "lora_rank": lora_rank})
    return Esm2Network.pretrained(Esm2Config.from_dict(model)).eval(), model


def _encode(text: str) -> torch.Tensor:
    return torch.tensor([ALPHABET.tokens.index(c) if c != "_" else ALPHABET.mask_index for c in text])


def test_the_network_feeds_cls_residues_eos_and_reads_the_projects_alphabet(tiny):
    from transformers import EsmForMaskedLM

    network, model = _network(tiny)
    vocabulary = [line for line in (tiny / "vocab.txt").read_text().splitlines() if line]
    esm = EsmForMaskedLM.from_pretrained(tiny).eval()
    long, short = "MK_LAGH_WR", "AC_Y"
    tokens = torch.full((2, len(long)), ALPHABET.pad_index)
    tokens[0] = _encode(long)
    tokens[1, : len(short)] = _encode(short)
    with torch.no_grad():
        logits = network(tokens, torch.ones(2), torch.tensor([len(long), len(short)]))
        for row, text in enumerate((long, short)):
            ids = [vocabulary.index("<cls>")]
            ids += [vocabulary.index("<mask>" if c == "_" else c) for c in text]
            ids += [vocabulary.index("<eos>")]
            expected = esm(input_ids=torch.tensor([ids])).logits[0, 1:-1]  # alone, unpadded
            columns = [vocabulary.index(t) for t in ALPHABET.tokens[: ALPHABET.n_residues]]
            torch.testing.assert_close(logits[row, : len(text), : ALPHABET.n_residues], expected[:, columns],
                                       atol=1e-5, rtol=1e-5)  # fmt: skip
    assert (logits[..., ALPHABET.n_residues :] == -1.0e4).all()  # pad and mask are never scores
    assert model["token_ids"]["<mask>"] == vocabulary.index("<mask>") and model["esm"]["hidden_size"] == 32


def test_its_absorbing_score_is_its_denoising_distribution_over_expm1_sigma(tiny):
    """p_t(x with y at i) / p_t(x) = p_0(y | unmasked) / expm1(sigma): the log scores plus log expm1(sigma)
    are ESM's softmax over the 21 residues, at every noise level."""
    from protein_sedd.diffusion.graph import build_graph

    network, _ = _network(tiny)
    graph = build_graph("absorbing", ALPHABET)
    tokens = _encode("MK_LA__EWR")[None]
    with torch.no_grad():
        logits = network(tokens, torch.zeros(1), torch.tensor([10]))
    expected = torch.softmax(logits[0, :, : ALPHABET.n_residues], dim=-1)
    for sigma in (0.01, 0.7, 5.0):
        log_score = graph.log_score(logits, torch.tensor([sigma]), time_conditioning=False)
        recovered = (log_score[0] + math.log(math.expm1(sigma))).exp()
        torch.testing.assert_close(recovered, expected, atol=1e-6, rtol=1e-5)


def _train_args(fasta, out, tiny, steps, *extra):
    return ["train", "--fasta", fasta, "--out", out, "--max-steps", steps, "--device", "cpu", "model=esm2",
            f"model.pretrained={tiny}", "data.dedupe=false", "trainer.batch_size=32", "trainer.log_every=2",
            "trainer.val_every=3", "trainer.val_sequences=8", "trainer.val_t_samples=1", *extra]  # fmt: skip


def test_every_command_runs_through_a_fine_tuned_esm2_and_it_resumes_exactly(tmp_path, capsys, tiny):
    from safetensors.torch import load_file

    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=300)
    code, _, err = run_cli(_train_args(fasta, tmp_path / "whole", tiny, 6), capsys)
    assert code == 0, err
    # full fine-tuning: everything trains but ESM's contact head (2 layers x 4 heads + a bias: 9 weights)
    assert "protein-sedd train: 0.02M parameters (0.0194M trainable, 99.95%) on cpu" in err
    config = (tmp_path / "whole" / "config.yaml").read_text()
    assert "kind: esm2" in config and "num_hidden_layers: 2" in config  # the architecture is recorded
    assert run_cli(_train_args(fasta, tmp_path / "split", tiny, 3), capsys)[0] == 0
    assert run_cli(["train", "--out", tmp_path / "split", "--resume", "--max-steps", 6], capsys)[0] == 0
    whole = load_file(tmp_path / "whole" / "checkpoint" / "model.safetensors")
    split = load_file(tmp_path / "split" / "checkpoint" / "model.safetensors")
    assert whole.keys() == split.keys() and "lm.lm_head.decoder.weight" not in whole  # tied: stored once
    assert all(torch.equal(whole[k], split[k]) for k in whole)

    run = tmp_path / "whole"
    designs = tmp_path / "d.fasta"
    code, _, err = run_cli(["design", "--checkpoint", run, "--n", 6, "--steps", 8, "--out", designs], capsys)
    assert code == 0, err
    sequences = [line for line in designs.read_text().splitlines() if not line.startswith(">")]
    assert len(sequences) == 6 and all(len(s) == 8 for s in sequences)  # the training lengths
    report = tmp_path / "e.json"
    args = ["evaluate", "--checkpoint", run, "--fasta", designs, "--json", report, "--t-samples", 4]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert json.loads(report.read_text())["n_sequences"] == 6
    wildtype = tmp_path / "wt.fasta"
    wildtype.write_text(">wt\nMKVLAGHE\n")
    code, _, err = run_cli(["score-variants", "--checkpoint", run, "--wildtype", wildtype, "--scan", "--out",
                            tmp_path / "scan.csv"], capsys)  # fmt: skip
    assert code == 0, err

    model = protein_sedd.load(run, "cpu")
    scan = model.scan_variants("MKVLAGHE")
    with torch.no_grad():  # masked marginal by hand at position 3: log p(A) - log p(V), position masked
        logits = model.network(_encode("MK_LAGHE")[None], torch.zeros(1), torch.tensor([8]))
    log_p = torch.log_softmax(logits[0, 2, : ALPHABET.n_residues], -1)
    by_hand = float(log_p[ALPHABET.tokens.index("A")] - log_p[ALPHABET.tokens.index("V")])
    assert float(scan.loc[scan["mutant"] == "V3A", "score"].iloc[0]) == pytest.approx(by_hand, abs=1e-5)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    assert "ESM-2 (" in (saved / "README.md").read_text()
    again = protein_sedd.load(saved, "cpu")
    first = [d.sequence for d in model.design(4, steps=8, seed=3, progress=False)]
    assert [d.sequence for d in again.design(4, steps=8, seed=3, progress=False)] == first
    assert model.embed(["MKVLAGHE", "MKV"]).shape == (2, 32)


def test_a_zero_shot_esm2_from_the_hub_cache_designs_scores_and_fine_tunes(tmp_path, capsys, hub_cache, tiny):
    model = protein_sedd.load(f"esm2:{HUB_ID}", "cpu")
    assert model.name == HUB_ID
    with pytest.raises(UserError, match="records no training lengths; pass length or length_range"):
        model.design(2, steps=4, progress=False)
    designs = model.design(3, length=12, steps=6, progress=False)
    assert [d.length for d in designs] == [12, 12, 12]
    scores = model.score([WILD_TYPE], t_samples=4)
    assert np.isfinite(scores["nats"]).all()
    # the length term is a uniform p(L) over the residues ESM-2 reads (no training lengths): the tiny
    # model's 258 positions less <cls> and <eos>
    assert model.max_length == 256
    assert model.length_prior.log_prob(torch.tensor([10])).item() == pytest.approx(-math.log(256))
    direct, _ = _network(tiny)
    variants = model.score_variants(WILD_TYPE, ["K2R"])
    with torch.no_grad():
        logits = direct(_encode("M_VLAGHEWR")[None], torch.zeros(1), torch.tensor([10]))
    log_p = torch.log_softmax(logits[0, 1, : ALPHABET.n_residues], -1)
    by_hand = float(log_p[ALPHABET.tokens.index("R")] - log_p[ALPHABET.tokens.index("K")])
    assert float(variants["score"].iloc[0]) == pytest.approx(by_hand, abs=1e-5)  # ESM-1v's masked marginal
    code, _, err = run_cli(["design", "--checkpoint", f"esm2:{HUB_ID}", "--n", 2, "--length", 9, "--steps", 4,
                            "--out", tmp_path / "zs.fasta"], capsys)  # fmt: skip
    assert code == 0, err
    assert f"checkpoint={HUB_ID}" in (tmp_path / "zs.fasta").read_text()
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    args = [
        "train",
        "--fasta",
        fasta,
        "--out",
        tmp_path / "run",
        "--max-steps",
        2,
        "model=esm2",
        f"model.pretrained={HUB_ID}",
        "trainer.val_every=2",
        "trainer.val_sequences=4",
        "trainer.val_t_samples=1",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err


def test_offline_with_nothing_cached_is_one_line_saying_what_to_fetch(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=50)
    hint = f"`hf download {HUB_ID}`"
    with pytest.raises(UserError) as caught:
        protein_sedd.load(f"esm2:{HUB_ID}", "cpu")
    assert hint in str(caught.value) and "\n" not in str(caught.value)
    for args in (["design", "--checkpoint", f"esm2:{HUB_ID}", "--n", 2, "--length", 8],
                 ["train", "--fasta", fasta, "--out", tmp_path / "run", "model=esm2"]):  # fmt: skip
        code, _, err = run_cli(args, capsys)
        assert code == 2 and hint in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # no run folder claimed


def test_lora_trains_the_adapters_alone_and_its_folder_loads_without_the_original(tmp_path, capsys, tiny):
    from safetensors.torch import load_file

    original = tmp_path / "original"
    shutil.copytree(tiny, original)
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=300)
    args = _train_args(fasta, tmp_path / "lora", original, 6, "model.lora_rank=4", "trainer.lr=1e-2")
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "trainable, 7.35%)" in err  # rank-4 adapters on query, key and value: 1,536 of 20,906
    trained = load_file(tmp_path / "lora" / "checkpoint" / "model.safetensors")
    from transformers import EsmForMaskedLM

    start = EsmForMaskedLM.from_pretrained(
        original
    ).state_dict()  # the names as loaded (the file's are older)
    prefix = "lm.base_model.model."
    frozen = [k for k in trained if "lora_" not in k]
    adapters = [k for k in trained if "lora_B" in k]
    assert len(adapters) == 6  # 2 layers x (query, key, value)
    for name in frozen:  # the pretrained weights are untouched
        torch.testing.assert_close(trained[name], start[name.removeprefix(prefix).replace(".base_layer", "")])
    assert any(trained[k].abs().max() > 0 for k in adapters)  # the adapters moved from their zero start
    shutil.rmtree(original)  # the folder holds every weight: no access to the original is needed
    model = protein_sedd.load(tmp_path / "lora", "cpu")
    assert len(model.design(2, steps=4, progress=False)) == 2


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m["token_ids"].pop("<mask>"),
            r"model.token_ids\['<mask>'\]=None: expected an id in 0..32",
        ),
        (
            lambda m: m["esm"].update(hidden_size=10**6, intermediate_size=10**6),
            r"model.esm: about .* parameters, above the limit",
        ),
        (lambda m: m["esm"].update(num_hidden_layers="six"), r"model.esm.num_hidden_layers='six': expected"),
        (lambda m: m.update(kind="gpt"), r"model.kind='gpt': choose ddit or esm2"),
        (lambda m: m.update(time_conditioning=True), r"model=esm2 is time-independent"),
    ],
)
def test_a_damaged_esm2_config_is_one_line_before_anything_is_built(tmp_path, capsys, tiny, edit, message):
    import yaml

    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=100)
    assert run_cli(_train_args(fasta, tmp_path / "run", tiny, 1), capsys)[0] == 0
    path = tmp_path / "run" / "checkpoint" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config["model"])
    path.write_text(yaml.safe_dump(config))
    code, _, err = run_cli(["design", "--checkpoint", tmp_path / "run", "--n", 2, "--out", tmp_path / "d.fa"],
                           capsys)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and str(path) in err, err
    assert __import__("re").search(message, err), err


@pytest.mark.slow
def test_esm2_trains_under_ddp_on_two_gloo_ranks(tmp_path, capsys, tiny):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    code, _, err = run_cli([*_train_args(fasta, tmp_path / "run", tiny, 4), "--devices", 2], capsys)
    assert code == 0, err
    model = protein_sedd.load(tmp_path / "run", "cpu")
    assert model.config.step == 4 and len(model.design(2, steps=4, progress=False)) == 2


@pytest.mark.slow
def test_a_fine_tuned_esm2_reaches_the_known_entropy(tmp_path, capsys, tiny):
    fasta = write_synthetic_fasta(tmp_path / "s.fa")
    # 1,000 steps at lr 3e-3 (the DDiT's test: 400 at 1e-3): the tiny ESM-2 (2 layers, hidden 32) from a
    # random start measured 1.90 nats here (entropy 1.86); 400 steps reached 2.34 at 3e-3 and 2.07 at 1e-2
    args = ["train", "--fasta", fasta, "--out", tmp_path / "run", "--max-steps", 1000, "--device", "cpu",
            "model=esm2", f"model.pretrained={tiny}", "data.dedupe=false", "data.test_fraction=0.1",
            "trainer.batch_size=128", "trainer.warmup_steps=50", "trainer.val_every=500", "trainer.lr=3e-3",
            "trainer.checkpoint_every=1000", "trainer.log_every=20"]  # fmt: skip
    assert run_cli(args, capsys)[0] == 0
    out = tmp_path / "eval.json"
    assert (
        run_cli(["evaluate", "--checkpoint", tmp_path / "run", "--split", "test", "--json", out], capsys)[0]
        == 0
    )
    nats = json.loads(out.read_text())["nats_per_sequence"]
    assert SYNTHETIC_ENTROPY * 0.97 <= nats <= SYNTHETIC_ENTROPY * 1.10  # the DDiT's tolerance


def test_it_fine_tunes_from_its_own_run_and_trains_on_an_alignments_focus_columns(tmp_path, capsys, tiny):
    fasta = write_synthetic_fasta(tmp_path / "s.fa", n=200)
    assert run_cli(_train_args(fasta, tmp_path / "parent", tiny, 2), capsys)[0] == 0
    args = [
        "train",
        "--fasta",
        fasta,
        "--out",
        tmp_path / "child",
        "--init-from",
        tmp_path / "parent",
        "--max-steps",
        2,
        "trainer.val_every=2",
        "trainer.val_sequences=4",
        "trainer.val_t_samples=1",
    ]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    child = protein_sedd.load(tmp_path / "child", "cpu")
    assert child.config.model.kind == "esm2" and child.config.init_from.step == 2
    # an alignment's focus columns: one letter per column, the scan scored on the focus
    rows = ["MKVLAGHEWR", "MKVLSGHEWR", "MRVLAGHDWR", "MK-LAGHEWK", "PKVLAGHEWR", "MKVIAGHEFR"] * 5
    alignment = tmp_path / "family.a2m"
    alignment.write_text("".join(f">r{i}\n{row}\n" for i, row in enumerate(rows)))
    run = tmp_path / "columns"
    code, _, err = run_cli(_train_args(alignment, run, tiny, 2, "data.representation=focus_columns"), capsys)
    assert code == 0, err
    scan = protein_sedd.load(run, "cpu").scan_variants("MKVLAGHEWR")
    assert len(scan) == 19 * 10 and scan["score"].notna().all()
