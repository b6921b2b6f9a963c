"""Every command against a corpus of bad inputs: exit code 2, one line, no traceback, nothing half-written.

An existing run directory is snapshotted before the corpus runs and must be byte-identical after it.
"""

import hashlib

import pytest

from protein_sedd.testing.tiny_esmfold import build_tiny_esmfold

from .conftest import SYNTHETIC_SEQUENCES, run_cli

BAD_FILES = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "no_header": b"MKVLAGHE\nMKVLAGHE\n",
    "invalid_residue": b">ok\nMKVLAGHE\n>bad\nMKV1AGHE\n",
    "duplicate_ids": b">same\nMKVLAGHE\n>same\nMKVLSGHE\n",
}
EXPECTED = {
    "empty": "empty file",
    "binary": "not a text FASTA file",
    "no_header": "does not start with '>'",
    "invalid_residue": "invalid residue '1' at position 4",
    "duplicate_ids": "duplicate record id 'same'",
    "directory": "is a directory",
    "missing": "no such file",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    paths = {}
    for name, content in BAD_FILES.items():
        paths[name] = root / f"{name}.fa"
        paths[name].write_bytes(content)
    paths["directory"] = root
    paths["missing"] = root / "missing.fa"
    return paths


@pytest.fixture(scope="module")
def esmfold(tmp_path_factory):
    return build_tiny_esmfold(tmp_path_factory.mktemp("esm") / "tiny")


def _snapshot(folder):
    return {
        p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def _assert_one_line_failure(capsys, args, expected, output=None):
    capsys.readouterr()
    code, out, err = run_cli(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (args, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert expected in lines[0], (args, lines[0])
    assert "Traceback" not in out + err
    if output is not None:
        assert not output.exists(), f"{output} was left behind by {args}"


def _commands(kind, path, tmp, run, esmfold, reference):
    """Each command, reading `path` where it takes a FASTA file."""
    return {
        "train": (["train", "--fasta", path, "--out", tmp / "new_run"], tmp / "new_run"),
        "evaluate": (
            ["evaluate", "--checkpoint", run, "--fasta", path, "--json", tmp / "e.json"],
            tmp / "e.json",
        ),
        "design": (
            [
                "design",
                "--checkpoint",
                run,
                "--fix",
                path,
                "--redesign",
                "2-3",
                "--n",
                "2",
                "--steps",
                "4",
                "--out",
                tmp / "d.fasta",
            ],
            tmp / "d.fasta",
        ),
        "fold-eval": (
            ["fold-eval", path, "--model", esmfold, "--out-dir", tmp / "fold", "--device", "cpu"],
            tmp / "fold",
        ),
        "seq-eval": (["seq-eval", path, "--reference", reference, "--out-dir", tmp / "seq"], tmp / "seq"),
    }


@pytest.mark.parametrize("case", list(EXPECTED))
def test_bad_fasta_files_for_every_command(case, corpus, esmfold, quick_run, tmp_path, capsys):
    before = _snapshot(quick_run)
    reference = quick_run.parent / "synthetic.fa"
    for command, (args, output) in _commands(
        case, corpus[case], tmp_path, quick_run, esmfold, reference
    ).items():
        if command == "seq-eval" and case in ("directory", "missing"):
            expected = EXPECTED[case]
        else:
            expected = EXPECTED[case]
        _assert_one_line_failure(capsys, args, expected, output)
    assert _snapshot(quick_run) == before


def test_too_long_for_the_model_or_the_folding_limit(corpus, esmfold, quick_run, tmp_path, capsys):
    long = tmp_path / "long.fa"
    long.write_text(f">fine\n{SYNTHETIC_SEQUENCES[0]}\n>huge\n{'A' * 1100}\n")
    only_long = tmp_path / "only_long.fa"
    only_long.write_text(f">huge\n{'A' * 300}\n")
    _assert_one_line_failure(capsys, ["evaluate", "--checkpoint", quick_run, "--fasta", long], "'huge'")
    _assert_one_line_failure(
        capsys,
        [
            "design",
            "--checkpoint",
            quick_run,
            "--fix",
            only_long,
            "--redesign",
            "1-5",
            "--n",
            "1",
            "--out",
            tmp_path / "d.fa",
        ],
        "300",
        tmp_path / "d.fa",
    )
    _assert_one_line_failure(
        capsys,
        ["train", "--fasta", only_long, "--out", tmp_path / "r"],
        "the longest record has 300 residues: set model.max_length=300 to keep it",
        tmp_path / "r",
    )
    _assert_one_line_failure(
        capsys, ["fold-eval", long, "--model", esmfold, "--out-dir", tmp_path / "f"], "huge", tmp_path / "f"
    )


def test_unwritable_outputs(quick_run, esmfold, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    designs = tmp_path / "designs.fa"
    designs.write_text(f">d1\n{SYNTHETIC_SEQUENCES[0]}\n")
    cases = [
        ["train", "--fasta", designs, "--out", a_file],
        ["evaluate", "--checkpoint", quick_run, "--split", "test", "--json", a_file / "x.json"],
        ["design", "--checkpoint", quick_run, "--n", "2", "--steps", "4", "--out", a_file / "d.fa"],
        ["fold-eval", designs, "--model", esmfold, "--out-dir", a_file / "fold"],
        ["seq-eval", designs, "--reference", designs, "--out-dir", a_file / "seq"],
    ]
    for args in cases:
        _assert_one_line_failure(capsys, args, str(a_file))
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--max-steps", "-3"], "--max-steps"),
        (["train", "--devices", "0"], "--devices"),
        (["train", "trainer.nope=1"], "trainer.nope"),
        (["train", "model.hidden_size=abc"], "hidden_size"),
        (["train", "trainer.batch_size=0"], "trainer.batch_size"),
        (["evaluate", "--split", "dev"], "--split"),
        (["evaluate", "--batch-size", "-1"], "--batch-size"),
        (["design", "--n", "0"], "--n"),
        (["design", "--steps", "-5"], "--steps"),
        (["design", "--predictor", "magic"], "magic"),
        (["design", "--seed", "-1"], "--seed"),
        (["design", "--devices", "0"], "--devices"),
        (["fold-eval", "--plddt-threshold", "170"], "--plddt-threshold"),
        (["fold-eval", "--backend", "alphafold"], "alphafold"),
        (["fold-eval", "--devices", "-2"], "--devices"),
        (["seq-eval", "--reference", "pfam"], "pfam"),
    ],
)
def test_nonsense_option_values(args, expected, quick_run, esmfold, tmp_path, capsys):
    designs = tmp_path / "designs.fa"
    designs.write_text(f">d1\n{SYNTHETIC_SEQUENCES[0]}\n")
    command, rest = args[0], args[1:]
    base = {
        "train": ["train", "--fasta", designs, "--out", tmp_path / "run"],
        "evaluate": ["evaluate", "--checkpoint", quick_run],
        "design": ["design", "--checkpoint", quick_run, "--out", tmp_path / "d.fa"],
        "fold-eval": ["fold-eval", designs, "--model", esmfold, "--out-dir", tmp_path / "fold"],
        "seq-eval": ["seq-eval", designs, "--out-dir", tmp_path / "seq"],
    }[command]
    _assert_one_line_failure(capsys, [*base, *rest], expected)
    assert not any((tmp_path / name).exists() for name in ("run", "d.fa", "fold", "seq"))
