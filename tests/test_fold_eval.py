"""fold-eval on a tiny random-init ESMFold: the real transformers code path, CPU, seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from protein_sedd.testing.tiny_esmfold import PLUMBING_NOTE, TOY_KEY, build_tiny_esmfold, is_toy_esmfold

pytest.importorskip("transformers")

from protein_sedd.cli import main  # noqa: E402
from protein_sedd.evaluation import folding  # noqa: E402

DESIGNS = {
    "d1": "MKVLAAGIVGAVLLAMKVLAEE",
    "d2": "ACDEFGHIKLMNPQRSTVWY",
    "d3": "MSTNPKPQRKTKRNTNRRPQDVKFPGG",
    "d4": "GSHMKKLLPPQQ",
    "d5": "MADEEKLPPGWEKRMSRSSGRVYYFNHITNASQWERPSG",
}


def write_designs(path: Path, designs: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in designs.items()))
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A full EsmForProteinFolding at toy size, saved like a downloaded checkpoint."""
    return build_tiny_esmfold(tmp_path_factory.mktemp("esmfold") / "tiny_esmfold")


def test_only_the_toy_model_is_labelled_a_plumbing_check(tmp_path, tiny_model):
    assert is_toy_esmfold(tiny_model)
    config = json.loads((tiny_model / "config.json").read_text())
    del config[TOY_KEY]
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text(json.dumps(config))
    assert not is_toy_esmfold(tmp_path / "real")
    assert not is_toy_esmfold("facebook/esmfold_v1") and not is_toy_esmfold(tmp_path / "missing")


@pytest.fixture
def fold_calls(monkeypatch) -> list[list[str]]:
    """Records the sequences of every batch the transformers backend folds."""
    calls: list[list[str]] = []
    real_fold = folding.TransformersESMFold.fold

    def counting_fold(self, sequences):
        calls.append(list(sequences))
        return real_fold(self, sequences)

    monkeypatch.setattr(folding.TransformersESMFold, "fold", counting_fold)
    return calls


def run(designs: Path, model: Path, out: Path, *extra: str) -> int:
    return main(
        ["fold-eval", str(designs), "--model", str(model), "--out-dir", str(out), "--device", "cpu", *extra]
    )


def reference_plddt(model_dir: Path, sequence: str) -> np.ndarray:
    """Per-residue (C-alpha) pLDDT straight from the model, 0-1 as transformers returns it."""
    from transformers import EsmForProteinFolding

    model = EsmForProteinFolding.from_pretrained(model_dir, local_files_only=True).eval()
    model.esm.float()
    with torch.no_grad():
        return model.infer([sequence])["plddt"][0, :, folding.CA_ATOM].numpy()


def test_fold_eval_end_to_end(tmp_path, tiny_model, fold_calls):
    from Bio.PDB import PDBParser
    from Bio.SeqUtils import seq1

    designs = write_designs(tmp_path / "designs.fasta", DESIGNS)
    out = tmp_path / "fold"
    assert run(designs, tiny_model, out, "--plddt-threshold", "0", "--max-tokens-per-batch", "64") == 0
    assert sorted(s for call in fold_calls for s in call) == sorted(DESIGNS.values())
    assert len(fold_calls) > 1  # the token budget split the designs into several batches

    frame = pd.read_csv(out / "results.csv", dtype={"id": str})
    assert list(frame.columns) == ["id", "sequence", "length", "mean_plddt", "ptm", "success"]
    assert frame["id"].tolist() == list(DESIGNS)  # input order, whatever the batch order was
    assert frame["length"].tolist() == [len(s) for s in DESIGNS.values()]
    assert frame["mean_plddt"].between(0, 100).all() and frame["ptm"].between(0, 1).all()
    assert frame["mean_plddt"].max() - frame["mean_plddt"].min() > 1.0  # designs differ
    assert frame["success"].all()  # threshold 0

    parser = PDBParser(QUIET=True)
    for row in frame.itertuples():
        residues = list(parser.get_structure(row.id, out / f"{row.id}.pdb").get_residues())
        assert len(residues) == row.length
        assert "".join(seq1(r.get_resname()) for r in residues) == row.sequence
        per_residue = []
        for residue in residues:
            b_factors = {atom.get_bfactor() for atom in residue}
            assert len(b_factors) == 1  # every atom of a residue carries the residue's pLDDT
            per_residue.append(b_factors.pop())
        per_residue = np.array(per_residue)
        assert ((per_residue >= 0) & (per_residue <= 100)).all()
        assert per_residue.mean() == pytest.approx(row.mean_plddt, abs=0.006)  # PDB keeps 2 decimals
    # the 0-1 model output was converted to 0-100, residue by residue
    raw = reference_plddt(tiny_model, DESIGNS["d3"])
    residues = list(parser.get_structure("d3", out / "d3.pdb").get_residues())
    assert np.allclose([r["CA"].get_bfactor() for r in residues], raw * 100, atol=0.006)
    assert raw.max() <= 1.0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == len(DESIGNS)
    assert summary["successes"] == int(frame["success"].sum()) == len(DESIGNS)
    assert summary["success_rate"] == pytest.approx(1.0)
    assert summary["mean_plddt"] == pytest.approx(frame["mean_plddt"].mean())
    assert summary["median_plddt"] == pytest.approx(frame["mean_plddt"].median())
    assert summary["threshold"] == 0.0
    assert summary["model"] == str(tiny_model.resolve())
    assert summary["note"] == PLUMBING_NOTE  # a random-weight model's pLDDT is labelled as meaningless
    assert (out / "plddt_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / ".fold.partial").exists()

    # a threshold between the designs decides success; the stored folds are reused, nothing is refolded
    fold_calls.clear()
    threshold = float(np.sort(frame["mean_plddt"])[2]) - 1e-6  # the best three succeed
    assert run(designs, tiny_model, out, "--plddt-threshold", str(threshold)) == 0
    assert fold_calls == []
    rescored = pd.read_csv(out / "results.csv", dtype={"id": str})
    assert rescored["success"].tolist() == (rescored["mean_plddt"] >= threshold).tolist()
    assert rescored["success"].sum() == 3
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["successes"], summary["threshold"]) == (3, pytest.approx(threshold))
    assert summary["success_rate"] == pytest.approx(3 / len(DESIGNS))
    from protein_sedd.evaluation.rates import wilson_interval

    assert summary["success"]["ci95"] == pytest.approx(list(wilson_interval(3, len(DESIGNS))))
    assert sum(b["count"] for b in summary["success_by_length"]) == 3

    assert run(designs, tiny_model, out, "--plddt-threshold", "100") == 0
    assert json.loads((out / "summary.json").read_text())["successes"] == 0


def test_resume_folds_only_new_designs(tmp_path, tiny_model, fold_calls, monkeypatch):
    first = dict(list(DESIGNS.items())[:3])
    out = tmp_path / "fold"
    assert run(write_designs(tmp_path / "a.fasta", first), tiny_model, out) == 0
    before = pd.read_csv(out / "results.csv", dtype={"id": str})

    fold_calls.clear()
    assert run(write_designs(tmp_path / "b.fasta", DESIGNS), tiny_model, out) == 0
    assert sorted(s for call in fold_calls for s in call) == sorted(list(DESIGNS.values())[3:])
    after = pd.read_csv(out / "results.csv", dtype={"id": str})
    assert after["id"].tolist() == list(DESIGNS)
    assert np.allclose(after["mean_plddt"][:3], before["mean_plddt"])

    # all done: the model is not even loaded
    monkeypatch.setattr(
        folding, "load_backend", lambda *a, **k: pytest.fail("loaded a model with nothing to fold")
    )
    assert run(tmp_path / "b.fasta", tiny_model, out) == 0


class Interrupted(Exception):
    pass


def test_interrupted_run_leaves_no_output_and_resumes(tmp_path, tiny_model, monkeypatch):
    designs = write_designs(tmp_path / "designs.fasta", DESIGNS)
    out = tmp_path / "fold"
    real_fold = folding.TransformersESMFold.fold
    batches = []

    def failing_second_batch(self, sequences):
        batches.append(list(sequences))
        if len(batches) == 2:
            raise Interrupted
        return real_fold(self, sequences)

    monkeypatch.setattr(folding.TransformersESMFold, "fold", failing_second_batch)
    with pytest.raises(Interrupted):
        run(designs, tiny_model, out, "--max-tokens-per-batch", "30")
    assert not out.exists()
    partial = tmp_path / ".fold.partial"
    saved = pd.read_csv(partial / "results.csv", dtype={"id": str})
    assert saved["sequence"].tolist() == [s for s in DESIGNS.values() if s in batches[0]]

    batches.clear()

    def recording_fold(self, sequences):
        batches.append(list(sequences))
        return real_fold(self, sequences)

    monkeypatch.setattr(folding.TransformersESMFold, "fold", recording_fold)
    assert run(designs, tiny_model, out, "--max-tokens-per-batch", "30") == 0
    refolded = {s for batch in batches for s in batch}
    assert refolded == set(DESIGNS.values()) - set(saved["sequence"])
    assert not partial.exists()
    assert len(pd.read_csv(out / "results.csv")) == len(DESIGNS)


def fold_all(backend, sequences, max_tokens) -> dict[int, folding.FoldedDesign]:
    return {
        i: d
        for ids, ds in folding.fold_in_batches(backend, sequences, max_tokens)
        for i, d in zip(ids, ds, strict=True)
    }


def test_batched_and_single_folds_agree(tiny_model):
    """Padding must not leak into real positions, and pTM must be per sequence (not one per batch)."""
    backend = folding.load_backend("transformers", str(tiny_model), torch.device("cpu"), None)
    sequences = list(DESIGNS.values())
    batched = fold_all(backend, sequences, max_tokens=10_000)
    single = fold_all(backend, sequences, max_tokens=1)
    assert sorted(batched) == sorted(single) == list(range(len(sequences)))
    for i in range(len(sequences)):
        assert np.allclose(batched[i].residue_plddt, single[i].residue_plddt, atol=1e-3)
        assert batched[i].ptm == pytest.approx(single[i].ptm, abs=1e-4)
    assert len({round(d.ptm, 6) for d in single.values()}) == len(sequences)


def test_plan_batches_sorts_by_length_under_the_budget():
    lengths = [5, 1, 3, 3, 10]
    batches = folding.plan_batches(lengths, max_tokens=8)
    assert batches == [[1, 2], [3], [0], [4]]  # 10 > 8 still gets a batch of its own
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert folding.plan_batches(lengths, max_tokens=100) == [[1, 2, 3, 0, 4]]


def test_plddt_scaling():
    assert folding.plddt_to_percent(np.array([0.0, 0.5, 1.0]), 1.0).tolist() == [0.0, 50.0, 100.0]
    assert folding.plddt_to_percent(np.array([12.5, 99.0]), 100.0).tolist() == [12.5, 99.0]
    with pytest.raises(RuntimeError):
        folding.plddt_to_percent(np.array([0.2, 35.0]), 1.0)  # 0-100 values where 0-1 was expected


LONG = "A" * (folding.MAX_FOLD_LENGTH + 1)


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", [], "empty file"),
        ("just some text\n", [], "does not start with '>'"),
        (">x\nMKV1L\n", [], "invalid residue '1'"),
        (">x\nMKV\n>x\nMKV\n", [], "duplicate record id"),
        (f">long\n{LONG}\n", [], "at most 1024"),
        (">x\nMKV\n", ["--backend", "openfold"], "--backend 'openfold'"),
        (">x\nMKV\n", ["--backend", "fair-esm"], "openfold"),
        (">x\nMKV\n", ["--plddt-threshold", "101"], "0-100"),
        (">x\nMKV\n", ["--plddt-threshold", "-5"], "0-100"),
        (">x\nMKV\n", ["--model", "nobody/not-an-esmfold"], "`hf download facebook/esmfold_v1`"),
        (">x\nMKV\n", ["--model", "/no/such/esmfold"], "--model /no/such/esmfold: no such folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, extra, message):
    designs = tmp_path / "designs.fasta"
    designs.write_text(content)
    out = tmp_path / "out"
    rc = main(["fold-eval", str(designs), "--out-dir", str(out), "--device", "cpu", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["designs.fasta"]  # no output, no partial folder


def test_bad_paths_exit_2(tmp_path, capsys, tiny_model):
    out = tmp_path / "out"
    assert main(["fold-eval", str(tmp_path), "--model", str(tiny_model), "--out-dir", str(out)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["fold-eval", str(tmp_path / "missing.fa"), "--out-dir", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    locked = write_designs(tmp_path / "locked.fasta", {"x": "MKV"})
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root reads anything: nothing to check there
        assert main(["fold-eval", str(locked), "--out-dir", str(out)]) == 2
        assert "permission denied" in capsys.readouterr().err
    assert not out.exists()


def test_another_designs_file_never_truncates_earlier_results(tmp_path, tiny_model, capsys):
    out = tmp_path / "fold"
    first = dict(list(DESIGNS.items())[:3])
    assert run(write_designs(tmp_path / "a.fasta", first), tiny_model, out) == 0
    (out / "notes.txt").write_text("mine")
    before = (out / "results.csv").read_text()
    capsys.readouterr()

    other = write_designs(tmp_path / "b.fasta", {"e1": "MKVLAGHE", "d1": "GGGGSGGGGS"})
    assert run(other, tiny_model, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "3 design(s) that are not in" in err and "--overwrite" in err
    assert (out / "results.csv").read_text() == before and (out / "d2.pdb").is_file()

    # --overwrite starts again: the earlier run's PDBs and results go, the user's file stays
    assert run(other, tiny_model, out, "--overwrite") == 0
    frame = pd.read_csv(out / "results.csv", dtype={"id": str})
    assert frame["id"].tolist() == ["e1", "d1"]
    assert not (out / "d2.pdb").exists() and not (out / "d3.pdb").exists()
    assert sorted(p.name for p in out.glob("*.pdb")) == ["d1.pdb", "e1.pdb"]
    assert (out / "notes.txt").read_text() == "mine"


def test_foreign_folder_needs_overwrite_and_keeps_other_files(tmp_path, tiny_model, capsys):
    designs = write_designs(tmp_path / "designs.fasta", {"d4": DESIGNS["d4"]})
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my,own,table\n")  # a results.csv fold-eval did not write
    (out / "d4.pdb").write_text("my structure")
    assert run(designs, tiny_model, out) == 2
    assert "holds no fold-eval output" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == "my,own,table\n"

    assert run(designs, tiny_model, out, "--overwrite") == 0
    assert pd.read_csv(out / "results.csv")["id"].tolist() == ["d4"]
    assert (out / "d4.pdb").read_text().startswith(("HEADER", "ATOM", "PARENT", "MODEL"))
    # now it is fold-eval's own folder: a rerun needs no --overwrite
    assert run(designs, tiny_model, out) == 0


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path, tiny_model, capsys):
    from protein_sedd.io.outputs import OutputFolder

    designs = write_designs(tmp_path / "designs.fasta", {"d4": DESIGNS["d4"]})
    out = tmp_path / "fold"
    assert run(designs, tiny_model, out) == 0
    with OutputFolder(out, "fold-eval", "--out-dir"):  # another run holds the folder
        assert run(write_designs(tmp_path / "more.fasta", DESIGNS), tiny_model, out) == 2
        err = capsys.readouterr().err
        assert "another protein-sedd run is writing this folder" in err
    assert pd.read_csv(out / "results.csv")["id"].tolist() == ["d4"]


def test_broken_weights_and_all_x_designs_end_with_one_line(tmp_path, tiny_model, capsys):
    import shutil

    designs = write_designs(tmp_path / "designs.fasta", {"d4": DESIGNS["d4"]})
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"a truncated download")
    out = tmp_path / "out"
    assert run(designs, broken, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --model") and "\n" not in err and "cannot load the ESMFold weights" in err
    (broken / "config.json").write_text("{not json")
    assert run(designs, broken, out) == 2
    assert "unreadable config.json" in capsys.readouterr().err

    unknown = write_designs(tmp_path / "unknown.fasta", {"ok": "MKVLA", "x": "XXXXXXXX"})
    assert run(unknown, tiny_model, out) == 2
    assert "record 'x' is all X" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "designs.fasta", "unknown.fasta"]


def test_fair_esm_backend_shares_the_fold_loop(tiny_model, monkeypatch):
    """fair-esm's ESMFold (openfold is not installed here) goes through the same output-to-PDB code:
    fed the same model output, with pLDDT on 0-100 and pTM per sequence, it gives the same designs."""
    transformers_backend = folding.TransformersESMFold.load(str(tiny_model), torch.device("cpu"), None)
    sequences = [DESIGNS["d4"], DESIGNS["d2"]]
    expected = transformers_backend.fold(sequences)

    class FairEsmLike:  # fair-esm's infer(): pLDDT already x100, pTM per sequence
        def infer(self, batch):
            output = dict(transformers_backend.model.infer(batch))
            output["plddt"] = output["plddt"] * 100
            output["ptm"] = torch.tensor([d.ptm for d in expected])
            return output

    backend = object.__new__(folding.FairEsmESMFold)
    backend.model = FairEsmLike()
    tools = staticmethod(folding.TransformersESMFold._structure_tools)
    monkeypatch.setattr(folding.FairEsmESMFold, "_structure_tools", tools)
    torch.manual_seed(0)
    got = backend.fold(sequences)
    for a, b in zip(got, expected, strict=True):
        assert a.sequence == b.sequence and a.ptm == pytest.approx(b.ptm)
        assert np.allclose(a.residue_plddt, b.residue_plddt, atol=1e-3)


def test_a_length_matched_natural_baseline_is_folded_once(tmp_path, tiny_model, fold_calls):
    designs = write_designs(tmp_path / "designs.fasta", DESIGNS)
    naturals = {f"n{k}": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"[:k] for k in (12, 20, 27, 33)}
    reference = write_designs(tmp_path / "family.fasta", naturals)
    out = tmp_path / "fold"
    args = ["--reference", reference, "--baseline-n", "3", "--plddt-threshold", "0"]
    assert run(designs, tiny_model, out, *args) == 0
    baseline = pd.read_csv(out / "natural_baseline.csv")
    assert len(baseline) == 3 and set(baseline["sequence"]) <= set(naturals.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["natural_baseline"]["n"] == 3
    assert summary["natural_baseline"]["success"]["count"] == 3  # threshold 0: every fold succeeds
    assert summary["natural_baseline"]["mean_plddt"] == pytest.approx(baseline["mean_plddt"].mean())

    fold_calls.clear()  # a rerun reuses the designs' folds and the baseline's
    assert run(designs, tiny_model, out, *args) == 0
    assert fold_calls == []
