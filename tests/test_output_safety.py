"""A command never deletes or overwrites what it did not write; two runs never write one folder at once.

Each case is one class of the mistakes and faults users meet: an output that is an input or lies inside a
checkpoint, a non-empty folder of someone else's, a second run on a busy folder, a full disk.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from protein_sedd.errors import UserError
from protein_sedd.io.outputs import OutputFolder
from protein_sedd.model.sources import bundled_checkpoint
from tests.conftest import SYNTHETIC_TRAIN_ARGS, run_cli, write_synthetic_fasta

DESIGN_ARGS = ["design", "--n", "2", "--steps", "4", "--length", "12", "--device", "cpu"]
TRAIN_ARGS = [
    "--max-steps",
    "2",
    "--device",
    "cpu",
    *SYNTHETIC_TRAIN_ARGS,
    "trainer.batch_size=16",
    "trainer.val_sequences=8",
    "trainer.val_t_samples=1",
]


def one_error_line(err: str) -> str:
    """The one `error:` line, last on stderr (progress lines of work done before it may precede it)."""
    lines = err.strip().splitlines()
    assert [line for line in lines if line.startswith("error")] == lines[-1:], err
    assert lines[-1].startswith("error: "), err
    return lines[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- design --out --------------------------------------------------------------------------------------


def test_design_refuses_to_overwrite_its_fix_input(tmp_path, capsys):
    wild_type = tmp_path / "wt.fasta"
    wild_type.write_text(">wt\nMKVLAAGIVGAVLLAM\n")
    code, _, err = run_cli(
        ["design", "--n", "2", "--steps", "4", "--device", "cpu", "--fix", wild_type, "--redesign", "3-5",
         "--out", wild_type],
        capsys,
    )  # fmt: skip
    assert code == 2 and "is the input" in one_error_line(err)
    assert wild_type.read_text() == ">wt\nMKVLAAGIVGAVLLAM\n"


def test_design_refuses_an_output_inside_a_checkpoint(tmp_path, capsys):
    bundled = bundled_checkpoint()
    before = snapshot(bundled)
    for target in (bundled / "model.safetensors", bundled / "designs.fasta"):
        code, _, err = run_cli([*DESIGN_ARGS, "--out", target, "--overwrite"], capsys)
        assert code == 2 and "lies inside the checkpoint" in one_error_line(err)
    assert snapshot(bundled) == before


def test_design_replaces_its_own_fasta_but_not_a_users_file(tmp_path, capsys):
    out = tmp_path / "designs.fasta"
    assert run_cli([*DESIGN_ARGS, "--out", out], capsys)[0] == 0
    assert run_cli([*DESIGN_ARGS, "--out", out, "--seed", "1"], capsys)[0] == 0  # its own: replaced

    notes = tmp_path / "notes.fasta"
    notes.write_text(">my_protein\nMKV\n")
    code, _, err = run_cli([*DESIGN_ARGS, "--out", notes], capsys)
    assert code == 2 and "--overwrite" in one_error_line(err)
    assert notes.read_text() == ">my_protein\nMKV\n"
    assert run_cli([*DESIGN_ARGS, "--out", notes, "--overwrite"], capsys)[0] == 0
    assert notes.read_text().startswith(">design_0001 ")


# -- evaluate --json -----------------------------------------------------------------------------------


def test_evaluate_json_never_lands_on_an_input_a_checkpoint_or_a_users_file(tmp_path, capsys):
    bundled = bundled_checkpoint()
    held_out = tmp_path / "held_out.fa"
    held_out.write_text(">a\nMKVLAAGIVGAVLLAM\n>b\nMSTNPKPQRKTKRNTNR\n")
    base = ["evaluate", "--checkpoint", bundled, "--fasta", held_out, "--t-samples", "1", "--device", "cpu"]
    before = snapshot(bundled)
    cases = [
        (bundled / "config.yaml", "lies inside the checkpoint"),
        (bundled / "report.json", "lies inside the checkpoint"),
        (held_out, "is the input"),
    ]
    for target, message in cases:
        code, _, err = run_cli([*base, "--json", target, "--overwrite"], capsys)
        assert code == 2 and message in one_error_line(err)
    assert snapshot(bundled) == before and not (bundled / "report.json").exists()

    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "data"}')
    code, _, err = run_cli([*base, "--json", mine], capsys)
    assert code == 2 and "--overwrite" in one_error_line(err)
    assert mine.read_text() == '{"my": "data"}'

    report = tmp_path / "report.json"
    assert run_cli([*base, "--json", report], capsys)[0] == 0
    assert run_cli([*base, "--json", report, "--seed", "1"], capsys)[0] == 0  # its own report: replaced
    assert json.loads(report.read_text())["n_sequences"] == 2 and report.read_text().endswith("}\n")


# -- train --out ---------------------------------------------------------------------------------------


@pytest.fixture
def synthetic_fasta(tmp_path) -> Path:
    return write_synthetic_fasta(tmp_path / "synthetic.fa", n=200)


def test_train_refuses_a_users_folder_and_the_current_folder(tmp_path, synthetic_fasta, capsys, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my: settings\n")
    (folder / "metrics.csv").write_text("my,measurements\n")
    before = snapshot(folder)
    code, _, err = run_cli(["train", "--fasta", synthetic_fasta, "--out", folder, *TRAIN_ARGS], capsys)
    assert code == 2 and "holds no train output" in one_error_line(err)
    assert snapshot(folder) == before

    monkeypatch.chdir(folder)  # --out "" and --out . both mean the current folder
    for out in ("", "."):
        code, _, err = run_cli(["train", "--fasta", synthetic_fasta, "--out", out, *TRAIN_ARGS], capsys)
        assert code == 2 and "not empty" in one_error_line(err)
    assert snapshot(folder) == before


def test_train_overwrite_replaces_only_the_runs_files(tmp_path, synthetic_fasta, capsys):
    run = tmp_path / "run"
    first = ["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS, "trainer.val_every=1"]
    assert run_cli(first, capsys)[0] == 0
    assert (run / "best").is_dir()  # step 1 or 2 had the lowest bound
    (run / "notes.txt").write_text("keep me")
    code, _, err = run_cli(["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS], capsys)
    assert code == 2 and "--resume" in one_error_line(err) and "--overwrite" in err

    code, _, err = run_cli(
        ["train", "--fasta", synthetic_fasta, "--out", run, "--resume", "--overwrite"], capsys
    )
    assert code == 2 and "give one" in one_error_line(err)

    args = ["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS, "--max-steps", "3", "--overwrite"]
    assert run_cli(args, capsys)[0] == 0
    assert (run / "notes.txt").read_text() == "keep me"
    assert not (run / "best").exists()  # the earlier run's best is gone: this one validated at no step
    from omegaconf import OmegaConf

    assert OmegaConf.load(run / "checkpoint" / "config.yaml").step == 3
    assert oct((run / "checkpoint" / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_train_on_a_busy_run_directory_is_refused(tmp_path, synthetic_fasta, capsys):
    run = tmp_path / "run"
    with OutputFolder(run, "train", "--out"):  # another training holds the folder
        code, _, err = run_cli(["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS], capsys)
        assert code == 2 and "another protein-sedd run is writing this folder" in one_error_line(err)
    assert sorted(p.name for p in run.iterdir()) == [".protein-sedd"]  # nothing of a run was written


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path, synthetic_fasta, capsys,
                                                                     monkeypatch):  # fmt: skip
    run = tmp_path / "run"
    assert run_cli(["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS], capsys)[0] == 0
    good = snapshot(run / "checkpoint")

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    code, _, err = run_cli(["train", "--out", run, "--resume", "--max-steps", "4"], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: no space left on {run} (while writing checkpoint)")
    assert snapshot(run / "checkpoint") == good
    assert sorted(p.name for p in run.iterdir() if "checkpoint" in p.name) == ["checkpoint"]


def test_disk_full_while_writing_designs_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    from protein_sedd.io import fasta

    out = tmp_path / "designs.fasta"

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fasta, "open", FullDisk, raising=False)
    code, _, err = run_cli([*DESIGN_ARGS, "--out", out], capsys)
    assert code == 2 and f"no space left on {tmp_path}" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


# -- the ownership record ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tampered", ["../precious.txt", "ABSOLUTE", "linkdir/precious.txt", ".", ".protein-sedd", 7, "a\\b"]
)
def test_a_tampered_owner_record_is_refused_whole_and_removes_nothing(tmp_path, tampered):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("data")
    (tmp_path / "precious.txt").write_text("data")
    folder = OutputFolder(tmp_path / "out", "seq-eval", "--out-dir")
    with folder:
        folder.record(["results.csv"])
    (folder.path / "linkdir").symlink_to(outside)  # a link inside the run to a folder outside it
    (folder.path / "results.csv").write_text("x")
    name = str(tmp_path / "precious.txt") if tampered == "ABSOLUTE" else tampered
    owner = folder.state_dir / "owner.json"
    owner.write_text(json.dumps({"command": "seq-eval", "files": ["results.csv", name]}))
    with folder, pytest.raises(UserError) as refused:
        folder.remove_own_files()
    assert str(refused.value) == (
        f"--out-dir {folder.path}: its ownership record {owner} lists {name!r}, which is not a file seq-eval "
        f"writes at the folder's top level (the record was edited); nothing was removed: delete "
        f"{folder.state_dir} to release the folder, or choose another"
    )
    assert (outside / "precious.txt").read_text() == (tmp_path / "precious.txt").read_text() == "data"
    assert (folder.path / "results.csv").read_text() == "x"  # not even the command's own file
    with folder, pytest.raises(UserError, match="the record was edited"):
        folder.record(["summary.json"])  # nor does it add to a record it cannot trust


def test_an_own_link_is_removed_as_a_link_never_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("data")
    folder = OutputFolder(tmp_path / "out", "seq-eval", "--out-dir")
    with folder:
        folder.record(["results.csv", "plots"])
    (folder.path / "results.csv").symlink_to(outside / "keep.txt")
    (folder.path / "plots").symlink_to(outside)
    with folder:
        folder.remove_own_files()
    assert not (folder.path / "results.csv").is_symlink() and not (folder.path / "plots").is_symlink()
    assert (outside / "keep.txt").read_text() == "data"


# what the libraries really raise on a full disk (neither is an OSError)
SAFETENSORS_FULL = (
    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
)
TORCH_SHORT_WRITE = "[enforce fail at inline_container.cc:603] . unexpected pos 1152 vs 1046"


def _safetensors_full(tensors, filename, metadata=None):
    from safetensors import SafetensorError

    Path(filename).write_bytes(b"partial")
    raise SafetensorError(SAFETENSORS_FULL)


def test_a_torch_short_write_on_a_full_disk_keeps_the_last_good_checkpoint(
    tmp_path, synthetic_fasta, capsys, monkeypatch
):
    import shutil

    import torch

    run = tmp_path / "run"
    assert run_cli(["train", "--fasta", synthetic_fasta, "--out", run, *TRAIN_ARGS], capsys)[0] == 0
    good = snapshot(run / "checkpoint")

    def short_write(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise RuntimeError(TORCH_SHORT_WRITE)

    monkeypatch.setattr(torch, "save", short_write)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=4096))  # the disk is full
    code, _, err = run_cli(["train", "--out", run, "--resume", "--max-steps", "4"], capsys)
    assert code == 2
    assert one_error_line(err).startswith(f"error: no space left on {run} (while writing checkpoint)")
    assert snapshot(run / "checkpoint") == good
    from protein_sedd.io.atomic import raise_no_space

    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=10 * 1024**3))
    with pytest.raises(RuntimeError, match="unexpected pos"), raise_no_space(run / "x"):
        raise RuntimeError(TORCH_SHORT_WRITE)  # with room left it is no full disk: it stays an error


def test_safetensors_on_a_full_disk_from_save_pretrained_and_train_guide(tmp_path, capsys, monkeypatch):
    import protein_sedd

    monkeypatch.setattr("safetensors.torch.save_file", _safetensors_full)
    model = protein_sedd.load("acyp-tiny", "cpu")
    target = tmp_path / "saved"
    with pytest.raises(UserError) as refused:
        model.save_pretrained(target)
    assert str(refused.value).startswith(f"no space left on {target} (while writing model.safetensors)")
    assert not target.exists()  # the folder it made is not left behind, empty
    labels = tmp_path / "labels.csv"
    labels.write_text("sequence,label\n" + "".join(f"MKVLAGHEWR{'A' * i},{i % 2}\n" for i in range(10)))
    out = tmp_path / "guide"
    code, _, err = run_cli(
        ["train-guide", "--labels", labels, "--out", out, "--steps", 2, "--device", "cpu"], capsys
    )
    assert code == 2
    assert one_error_line(err).startswith(f"error: no space left on {out} (while writing guide.safetensors)")
    assert not out.exists()
