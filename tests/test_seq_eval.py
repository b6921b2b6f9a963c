"""seq-eval: family HMM, nearest reference, diversity, composition, lengths, and the command end to end."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyhmmer")
pytest.importorskip("pyfamsa")

from protein_sedd.cli import main  # noqa: E402
from protein_sedd.evaluation import family_hmm, sequence_metrics  # noqa: E402
from protein_sedd.io.fasta import read_fasta, write_fasta  # noqa: E402

from .conftest import data_dir  # noqa: E402

DATA = data_dir()
ACYP = DATA / "acyp" / "hypf.fa"
AMINO = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def acyp() -> list:
    if not ACYP.is_file():
        pytest.skip(f"ACYP reference not found at {ACYP} (set PROTEIN_SEDD_DATA)")
    return read_fasta(ACYP)


def shuffled(sequence: str, seed: int) -> str:
    letters = list(sequence)
    random.Random(seed).shuffle(letters)
    return "".join(letters)


def mutated(sequence: str, n: int, seed: int) -> str:
    rng = random.Random(seed)
    letters = list(sequence)
    for position in rng.sample(range(len(letters)), n):
        letters[position] = rng.choice(AMINO.replace(letters[position], ""))
    return "".join(letters)


# ---- family HMM


def test_hmm_passes_held_out_naturals_and_rejects_shuffled(acyp):
    distinct = list(dict.fromkeys(r.sequence for r in acyp))
    held_out = random.Random(7).sample(distinct, 200)
    excluded = set(held_out)
    hmm = family_hmm.build_family_hmm(
        family_hmm.sample_sequences([s for s in distinct if s not in excluded], 400)
    )
    natural = family_hmm.family_bits(hmm, held_out)
    decoys = family_hmm.family_bits(hmm, [shuffled(s, i) for i, s in enumerate(held_out)])
    assert np.mean(natural >= family_hmm.PASS_BITS) >= 0.99
    assert np.median(natural) > 60
    assert np.mean(decoys >= family_hmm.PASS_BITS) <= 0.01
    assert np.mean(decoys == 0.0) >= 0.95  # no hit at all, the documented 0.0


def test_sample_is_deterministic_distinct_and_sized():
    sequences = [f"M{AMINO[i % 20]}{AMINO[i // 20 % 20]}K" for i in range(300)] * 2
    first = family_hmm.sample_sequences(sequences, 50)
    assert first == family_hmm.sample_sequences(sequences, 50)
    assert len(first) == len(set(first)) == 50
    assert family_hmm.sample_sequences(sequences, 1000) == list(dict.fromkeys(sequences))


def test_hmm_cache_is_keyed_and_falls_back_to_user_cache(tmp_path, monkeypatch, acyp):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "ref"
    folder.mkdir()
    reference = folder / "fam.fa"
    sequences = [r.sequence for r in acyp[:120]]
    write_fasta(reference, [(f"r{i}", s) for i, s in enumerate(sequences)])
    from protein_sedd.data.datasets import sha256_of

    sha = sha256_of(reference)
    hmm, path = family_hmm.load_or_build_family_hmm(reference, sha, sequences, size=50)
    assert path == folder / f"fam.family-n50-{sha[:12]}.hmm" and path.is_file()
    monkeypatch.setattr(family_hmm, "build_family_hmm", lambda *a, **k: pytest.fail("rebuilt a cached HMM"))
    cached, again = family_hmm.load_or_build_family_hmm(reference, sha, sequences, size=50)
    assert again == path and cached.M == hmm.M
    monkeypatch.undo()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder.chmod(0o555)  # a read-only reference folder, like a shared data set
    try:
        _, other = family_hmm.load_or_build_family_hmm(reference, sha, sequences, size=60)
    finally:
        folder.chmod(0o755)
    assert other == tmp_path / "xdg" / "protein-sedd" / "hmm" / f"fam.family-n60-{sha[:12]}.hmm"
    assert other.is_file() and not (folder / other.name).exists()


# ---- identity, nearest reference


def test_identity_definition():
    assert sequence_metrics.identity("ACDEFGHIKL", "ACDEFGHIKL") == 1.0
    assert sequence_metrics.identity("ACDEFGHIKL", "ACDEFGHIKW") == pytest.approx(0.9)
    assert sequence_metrics.identity("MKWVTFISLL", "MKWVTAISLL") == pytest.approx(0.9)
    assert sequence_metrics.identity("DEFGHI", "ACDEFGHIKLMN") == 1.0  # contained: over the shorter sequence
    assert sequence_metrics.identity("AAAA", "CCCC") == 0.0


def test_nearest_reference_finds_parent_and_exact_copies(acyp):
    references = [r.sequence for r in acyp[:300]]
    designs = [references[10], mutated(references[20], 5, seed=1), mutated(references[30], 30, seed=2)]
    nearest = sequence_metrics.nearest_references(designs, references)
    assert (nearest[0].index, nearest[0].identity, nearest[0].exact_copy) == (10, 1.0, True)
    assert nearest[1].index == 20 and not nearest[1].exact_copy
    assert nearest[1].identity == pytest.approx(1 - 5 / len(references[20]))
    # the 3-mer prefilter does not miss the best match: compare with aligning against everything
    for design, found in zip(designs[1:], nearest[1:], strict=True):
        brute = max(sequence_metrics.identity(design, r) for r in references)
        assert found.identity == pytest.approx(brute)


# ---- diversity, uniqueness, composition, lengths (values worked out by hand)


def test_diversity_and_uniqueness_by_hand():
    mean, pairs = sequence_metrics.mean_pairwise_identity(["ACDE", "ACDE", "ACDF"])
    assert pairs == 3 and mean == pytest.approx((1.0 + 0.75 + 0.75) / 3)
    assert sequence_metrics.fraction_unique(["ACDE", "ACDE", "ACDF"]) == pytest.approx(2 / 3)
    mean, pairs = sequence_metrics.mean_pairwise_identity(["AAAA", "AAAA", "CCCC", "CCCC"])
    assert pairs == 6 and mean == pytest.approx(2 / 6)
    assert math.isnan(sequence_metrics.mean_pairwise_identity(["ACDE"])[0])
    sampled, pairs = sequence_metrics.mean_pairwise_identity(["AAAA", "AAAA", "CCCC", "CCCC"], max_pairs=4)
    assert pairs == 4 and 0.0 <= sampled <= 0.5


def test_pair_ranks_cover_the_upper_triangle():
    n = 7
    pairs = [sequence_metrics._pair_from_rank(r, n) for r in range(n * (n - 1) // 2)]
    assert pairs == [(i, j) for i in range(n) for j in range(i + 1, n)]


def test_composition_and_js_divergence_by_hand():
    freqs = sequence_metrics.composition(["AAC", "C"])
    residues = sequence_metrics.RESIDUES
    assert freqs[residues.index("A")] == 0.5 and freqs[residues.index("C")] == 0.5 and freqs.sum() == 1.0
    assert sequence_metrics.js_divergence(freqs, freqs) == 0.0
    assert sequence_metrics.js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4): JS = (KL(p||m) + KL(q||m)) / 2
    expected = (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25) + math.log2(1 / 0.75)) / 2
    assert sequence_metrics.js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected)
    assert expected == pytest.approx(0.311278, abs=1e-6)


def test_length_statistics_by_hand():
    assert sequence_metrics.ks_distance([1, 2, 3], [1, 2, 3]) == 0.0
    assert sequence_metrics.ks_distance([1, 2], [3, 4]) == 1.0
    assert sequence_metrics.ks_distance([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    stats = sequence_metrics.length_stats([60, 80, 100, 120])
    assert stats == {
        "mean": 90.0,
        "std": pytest.approx(math.sqrt(500)),
        "median": 90.0,
        "min": 60,
        "max": 120,
    }


# ---- the command


@pytest.fixture
def small_reference(tmp_path, acyp) -> tuple[Path, list]:
    records = acyp[:400]
    path = tmp_path / "reference" / "family.fa"
    path.parent.mkdir()
    write_fasta(path, [(r.id, r.sequence) for r in records])
    return path, records


def test_seq_eval_end_to_end(tmp_path, small_reference, capsys):
    reference, records = small_reference
    designs = {
        "copy_a": records[3].sequence,
        "copy_b": records[50].sequence,
        "near": mutated(records[100].sequence, 4, seed=3),
        "far": mutated(records[200].sequence, 40, seed=4),
        "decoy_1": shuffled(records[5].sequence, 1),
        "decoy_2": shuffled(records[6].sequence, 2),
    }
    fasta = tmp_path / "designs.fasta"
    write_fasta(fasta, designs.items())
    out = tmp_path / "seq"
    assert (
        main(
            [
                "seq-eval",
                str(fasta),
                "--reference",
                str(reference),
                "--out-dir",
                str(out),
                "--hmm-sample-size",
                "300",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out.splitlines()  # off a terminal: plain rows, one a design
    assert printed[0] == f"seq-eval: {out}"
    assert any(line.startswith("copy_a ") and records[3].id in line for line in printed)

    frame = pd.read_csv(out / "results.csv", dtype={"id": str, "nearest_id": str})
    assert list(frame.columns) == [
        "id",
        "sequence",
        "length",
        "family_bits",
        "nearest_identity",
        "nearest_id",
        "exact_copy",
        "low_complexity",
        "longest_run",
        "min_window_entropy",
        "repeated_kmer",
    ]
    rows = frame.set_index("id")
    assert not rows["low_complexity"].any()  # natural-like sequences and their shuffles
    assert rows.loc["copy_a", "nearest_identity"] == 1.0 and rows.loc["copy_a", "exact_copy"]
    assert (
        rows.loc["copy_a", "nearest_id"] == records[3].id
        and rows.loc["copy_b", "nearest_id"] == records[50].id
    )
    assert rows.loc["near", "nearest_id"] == records[100].id and not rows.loc["near", "exact_copy"]
    assert rows.loc["near", "nearest_identity"] == pytest.approx(1 - 4 / len(records[100].sequence))
    assert (rows.loc[["copy_a", "copy_b", "near", "far"], "family_bits"] >= 25).all()
    assert (rows.loc[["decoy_1", "decoy_2"], "family_bits"] == 0.0).all()

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and summary["exact_copies"] == 2
    assert summary["family_pass_rate"] == pytest.approx(4 / 6)
    assert summary["family_no_hit_fraction"] == pytest.approx(2 / 6)
    assert summary["fraction_unique"] == 1.0
    assert summary["nearest_identity_max"] == 1.0
    assert summary["mean_pairwise_identity"] == pytest.approx(
        sequence_metrics.mean_pairwise_identity(list(designs.values()))[0]
    )
    assert summary["pairwise_pairs"] == 15
    from protein_sedd.evaluation.rates import wilson_interval

    assert summary["family_pass"]["count"] == 4 and summary["family_pass"]["n"] == 6
    assert summary["family_pass"]["ci95"] == pytest.approx(list(wilson_interval(4, 6)))
    assert sum(b["n"] for b in summary["family_pass_by_length"]) == 6
    assert summary["exact_copy"]["count"] == 2 and summary["low_complexity"]["count"] == 0
    natural = summary["natural_baseline"]  # 6 held-out naturals, length-matched, HMM built from others
    assert natural["n"] == 6 and natural["family_pass"]["count"] == 6
    reference_sequences = [r.sequence for r in records]
    assert summary["composition_js_bits"] == pytest.approx(
        sequence_metrics.js_divergence(
            sequence_metrics.composition(list(designs.values())),
            sequence_metrics.composition(reference_sequences),
        )
    )
    assert summary["composition"]["A"]["reference"] == pytest.approx(
        sum(s.count("A") for s in reference_sequences) / sum(map(len, reference_sequences))
    )
    assert summary["lengths"]["reference"]["max"] == max(map(len, reference_sequences))
    assert summary["length_ks"] == pytest.approx(
        sequence_metrics.ks_distance(
            [len(s) for s in designs.values()], [len(s) for s in reference_sequences]
        )
    )
    for png in ("family_bits_histogram.png", "identity_histogram.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (
        reference.parent / Path(summary["hmm_cache"]).name
    ).is_file()  # cached next to a writable reference


def test_seq_eval_named_reference_uses_the_dataset_and_user_cache(tmp_path, monkeypatch, acyp):
    monkeypatch.setenv("PROTEIN_SEDD_DATA", str(DATA))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fasta = tmp_path / "designs.fasta"
    write_fasta(fasta, [("natural", acyp[0].sequence), ("decoy", shuffled(acyp[0].sequence, 0))])
    out = tmp_path / "seq"
    assert (
        main(
            ["seq-eval", str(fasta), "--reference", "acyp", "--out-dir", str(out), "--hmm-sample-size", "300"]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_reference"] == 26856 and summary["reference"] == str(ACYP)
    assert summary["hmm_cache"].startswith(str(tmp_path / "xdg"))
    assert summary["exact_copies"] == 1 and summary["family_pass_rate"] == 0.5


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("", [], "empty file"),
        ("\n\n", [], "empty file"),
        ("MKVLA\n", [], "does not start with '>'"),
        (">x\nMKV#L\n", [], "invalid residue '#'"),
        (">x\nMKV\n", ["--reference", "no-such-family"], "neither a file nor a known dataset"),
        (">x\nMKV\n", ["--reference", "missing/ref.fa"], "no such file"),
        (">x\nMKV\n", ["--hmm-sample-size", "1"], "at least 2"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, small_reference, content, extra, message):
    reference, _ = small_reference
    designs = tmp_path / "designs.fasta"
    designs.write_text(content)
    out = tmp_path / "out"
    args = ["seq-eval", str(designs), "--reference", str(reference), "--out-dir", str(out), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bad_paths_exit_2(tmp_path, capsys, small_reference):
    reference, _ = small_reference
    designs = tmp_path / "designs.fasta"
    designs.write_text(">x\nMKV\n")
    cases = [
        ([str(tmp_path / "missing.fa"), "--reference", str(reference)], "no such file"),
        ([str(reference.parent), "--reference", str(reference)], "is a directory"),
        ([str(designs), "--reference", str(reference.parent)], "is a directory"),
    ]
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    cases += [
        (
            [str(designs), "--reference", str(reference), "--out-dir", str(tmp_path / "a_file")],
            "not a folder",
        ),
        (
            [str(designs), "--reference", str(reference), "--out-dir", str(tmp_path / "busy")],
            "holds no seq-eval",
        ),
        ([str(designs), "--reference", str(reference), "--out-dir", str(tmp_path)], "holds no seq-eval"),
    ]
    for args, message in cases:
        assert main(["seq-eval", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and message in err, (args, err)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"


def test_out_dir_keeps_the_users_files(tmp_path, small_reference, capsys):
    """seq-eval never removes what it did not write: not a fold-eval folder, not notes beside its results."""
    reference, _ = small_reference
    designs = tmp_path / "designs.fasta"
    designs.write_text(">x\nMKVLAAGIVGAVLLAMKVLAEE\n")
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "results.csv").write_text("id,mean_plddt\nx,80\n")  # say, fold-eval's results
    (folder / "x.pdb").write_text("a structure")
    args = ["seq-eval", str(designs), "--reference", str(reference), "--out-dir", str(folder)]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (folder / "results.csv").read_text() == "id,mean_plddt\nx,80\n"

    assert main([*args, "--overwrite"]) == 0
    assert (folder / "x.pdb").read_text() == "a structure"  # not seq-eval's: kept
    assert "family_bits" in (folder / "results.csv").read_text()  # seq-eval's own file: replaced
    assert (folder / "summary.json").read_text().endswith("}\n")
    # own output now: a rerun replaces its files again and keeps the others
    (folder / "notes.txt").write_text("keep me")
    assert main(args) == 0
    assert (folder / "notes.txt").read_text() == "keep me" and (folder / "x.pdb").is_file()
    leftovers = [p.name for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_an_edited_ownership_record_is_refused_before_any_work(tmp_path, small_reference, capsys):
    reference, _ = small_reference
    designs = tmp_path / "designs.fasta"
    designs.write_text(">x\nMKVLAAGIVGAVLLAMKVLAEE\n")
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("data")
    args = ["seq-eval", str(designs), "--reference", str(reference), "--out-dir", str(out)]
    assert main(args) == 0
    before = (out / "results.csv").read_text()
    (out / "linkdir").symlink_to(outside)
    owner = out / ".protein-sedd" / "owner.json"
    record = json.loads(owner.read_text())
    owner.write_text(json.dumps({**record, "files": [*record["files"], "linkdir/keep.txt"]}))
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: --out-dir {out}: its ownership record {owner} lists 'linkdir/keep")
        assert "\n" not in err and "nothing was removed" in err
    assert (outside / "keep.txt").read_text() == "data" and (out / "results.csv").read_text() == before
